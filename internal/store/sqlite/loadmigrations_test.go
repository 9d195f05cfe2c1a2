package sqlite

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestEmbeddedMigrations guards the build: the embedded files must be the
// versions 1 to Latest, each with an up and a down.
func TestEmbeddedMigrations(t *testing.T) {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	if len(ms) != Latest {
		t.Errorf("%d migrations embedded, want Latest = %d", len(ms), Latest)
	}
}

func TestLoadMigrationsRejects(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for _, tc := range []struct {
		name  string
		files []string
		want  string // part of the error
	}{
		{"no down", []string{"0001_init.up.sql"}, "needs an up and a down"},
		{"no files", nil, "needs an up and a down"},
		{"newer than Latest", []string{"0001_init.up.sql", "0001_init.down.sql", "9999_x.up.sql"}, "newer than Latest"},
		{"two ups", []string{"0001_init.up.sql", "0001_other.up.sql", "0001_init.down.sql"}, "two up files"},
		{"no direction", []string{"0001_init.sql"}, "want NNNN_name"},
		{"no number", []string{"init.up.sql"}, "want NNNN_name"},
		{"version 0", []string{"0000_init.up.sql"}, "bad version"},
	} {
		fsys := fstest.MapFS{}
		for _, f := range tc.files {
			fsys["migrations/"+f] = file
		}
		_, err := loadMigrations(fsys)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("loadMigrations(%s): %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
