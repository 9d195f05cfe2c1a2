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

// TestLoadWithGaps: branches take separate version ranges (1, 100, 200);
// Load orders them and Next/At step through them.
func TestLoadWithGaps(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	fsys := fstest.MapFS{}
	for _, n := range []string{"0001_init", "0100_a", "0200_b"} {
		fsys["migrations/"+n+".up.sql"] = file
		fsys["migrations/"+n+".down.sql"] = file
	}
	ms, err := Load(fsys, 200)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, m := range ms {
		got = append(got, m.Version)
	}
	if len(got) != 3 || got[0] != 1 || got[1] != 100 || got[2] != 200 {
		t.Fatalf("versions %v, want [1 100 200]", got)
	}
	for _, tc := range []struct{ cur, next int }{{0, 1}, {1, 100}, {100, 200}} {
		if m, ok := Next(ms, tc.cur); !ok || m.Version != tc.next {
			t.Errorf("Next(%d) = %d %v, want %d", tc.cur, m.Version, ok, tc.next)
		}
	}
	if _, ok := Next(ms, 200); ok {
		t.Error("Next(200) found a migration above the latest")
	}
	for v, want := range map[int]bool{0: true, 1: true, 100: true, 200: true, 2: false, 150: false} {
		if Known(ms, v) != want {
			t.Errorf("Known(%d) = %v, want %v", v, !want, want)
		}
	}
	if _, err := Load(fsys, 300); err == nil {
		t.Error("Load with latest 300 and no 0300 files: no error")
	}
}
