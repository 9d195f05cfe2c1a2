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

// TestGaps checks that versions of parallel branches (0001, 0100, 0200)
// load in order and that Next walks them one by one, up and down.
func TestGaps(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	fsys := fstest.MapFS{}
	for _, f := range []string{"0200_b", "0001_init", "0100_a"} {
		fsys["migrations/"+f+".up.sql"] = file
		fsys["migrations/"+f+".down.sql"] = file
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
	for _, tc := range []struct {
		cur, target, step int
		up, done          bool
	}{
		{0, 200, 1, true, false},
		{1, 200, 100, true, false},
		{100, 200, 200, true, false},
		{200, 200, 0, false, true},
		{200, 0, 200, false, false},
		{100, 1, 100, false, false},
		{1, 0, 1, false, false},
		{0, 0, 0, false, true},
	} {
		m, up, done, err := Next(ms, tc.cur, tc.target)
		if err != nil || m.Version != tc.step || up != tc.up || done != tc.done {
			t.Errorf("Next(%d, %d) = %d, up %v, done %v, %v; want %d, %v, %v", tc.cur, tc.target, m.Version, up, done, err, tc.step, tc.up, tc.done)
		}
	}
	for _, tc := range [][2]int{{50, 200}, {201, 200}, {1, 50}} {
		if _, _, _, err := Next(ms, tc[0], tc[1]); err == nil {
			t.Errorf("Next(%d, %d) succeeded, want an error for an unknown version", tc[0], tc[1])
		}
	}
	if _, err := Load(fsys, 300); err == nil {
		t.Error("Load with Latest 300 and no 0300 files succeeded")
	}
}
