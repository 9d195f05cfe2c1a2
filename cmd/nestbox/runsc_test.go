package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunscLookup(t *testing.T) {
	exe, data, pathA, pathB, empty := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	put := func(dir string, mode os.FileMode) string {
		p := filepath.Join(dir, "runsc")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	besideExe := put(exe, 0o755)
	inData := put(filepath.Join(data, "bin"), 0o755)
	onPathB := put(pathB, 0o755)
	put(pathA, 0o644) // not executable: skipped
	list := func(dirs ...string) string { return strings.Join(dirs, string(os.PathListSeparator)) }

	for _, tc := range []struct {
		name   string
		places runscPlaces
		want   string
		looked []string // on error, every place the message must name
	}{
		{"next to nestbox first", runscPlaces{exe, data, list(pathB)}, besideExe, nil},
		{"data dir before PATH", runscPlaces{empty, data, list(pathB)}, inData, nil},
		{"PATH, skipping a non-executable and relative entries", runscPlaces{empty, empty, list("rel", pathA, pathB)}, onPathB, nil},
		{"nowhere", runscPlaces{empty, empty, list(pathA, empty)}, "", []string{
			filepath.Join(empty, "runsc"), filepath.Join(empty, "bin", "runsc"), filepath.Join(pathA, "runsc"),
		}},
		{"nothing to look at", runscPlaces{}, "", []string{"PATH is empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.places.find()
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("find: %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("find: %q, want an error", got)
			}
			for _, l := range tc.looked {
				if !strings.Contains(err.Error(), l) {
					t.Errorf("error %q does not name %s", err, l)
				}
			}
		})
	}
}
