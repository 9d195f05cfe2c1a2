package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"migrations/0001_init.up.sql":   {Data: []byte("CREATE TABLE a (x INT);")},
		"migrations/0001_init.down.sql": {Data: []byte("DROP TABLE a;")},
		"migrations/0002_more.up.sql":   {Data: []byte("CREATE TABLE b (x INT);")},
		"migrations/0002_more.down.sql": {Data: []byte("DROP TABLE b;")},
	}
	ms, err := Load(fsys, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Version != 1 || ms[1].Version != 2 || ms[1].Up != "CREATE TABLE b (x INT);" || ms[0].Down != "DROP TABLE a;" {
		t.Fatalf("Load = %+v", ms)
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
		_, err := Load(fsys, 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%s): %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
