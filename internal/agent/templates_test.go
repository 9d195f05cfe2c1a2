package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestTemplatesHeld: the template versions reported as held are those in
// the sandboxes' state files (a paused sandbox's included), read from disk.
func TestTemplatesHeld(t *testing.T) {
	a := &Agent{cfg: Config{DataDir: t.TempDir()}}
	if got, err := a.templatesHeld(); err != nil || len(got) != 0 {
		t.Fatalf("no sandboxes dir: %v, %v; want nothing", got, err)
	}
	write := func(id string, rec record) {
		dir := filepath.Join(a.sandboxesDir(), id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		rec.ID = id
		b, _ := json.Marshal(rec)
		if err := os.WriteFile(filepath.Join(dir, stateFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a", record{Status: statusRunning, Template: "/t/base@aaaa/rootfs"})
	write("b", record{Status: statusPaused, Template: "/t/base@bbbb/rootfs"})
	os.MkdirAll(filepath.Join(a.sandboxesDir(), "c"), 0o700) // being created: no state yet
	got, err := a.templatesHeld()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"/t/base@aaaa/rootfs", "/t/base@bbbb/rootfs"}; !slices.Equal(got, want) {
		t.Fatalf("held %v, want %v", got, want)
	}
	// A state file that cannot be read keeps every version (the store
	// treats the error so).
	os.WriteFile(filepath.Join(a.sandboxesDir(), "c", stateFile), []byte("{"), 0o600)
	if _, err := a.templatesHeld(); err == nil {
		t.Fatal("a broken state file: no error")
	}
}
