package controlplane

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/store/sqlite"
)

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// A save that fails stores nothing: no key nobody knows.
	if _, err := Bootstrap(ctx, st, func(string) error { return errors.New("disk full") }); err == nil {
		t.Fatal("Bootstrap ignored a failed save")
	}
	if keys, _ := st.ListAPIKeys(ctx, DefaultTeamID); len(keys) != 0 {
		t.Fatalf("a key whose save failed was stored: %+v", keys)
	}

	var saved string
	key, err := Bootstrap(ctx, st, func(k string) error { saved = k; return nil })
	if err != nil || key == "" || key != saved {
		t.Fatalf("first run: key %q saved %q, %v", key, saved, err)
	}
	hash, _ := apikey.Parse(key)
	k, err := st.APIKeyByHash(ctx, hash)
	if err != nil || k.TeamID != DefaultTeamID {
		t.Fatalf("the bootstrap key is not the default team's: %+v, %v", k, err)
	}
	if u, err := st.GetUser(ctx, AdminUserID); err != nil || !u.Admin {
		t.Fatalf("admin user: %+v, %v", u, err)
	}

	// Later runs change nothing.
	again, err := Bootstrap(ctx, st, func(string) error { t.Fatal("saved a second key"); return nil })
	if err != nil || again != "" {
		t.Fatalf("second run: %q, %v", again, err)
	}
}

func TestHostToken(t *testing.T) {
	dir := t.TempDir()
	a, err := HostToken(dir)
	if err != nil || len(a) < 32 {
		t.Fatalf("HostToken: %q, %v", a, err)
	}
	b, err := HostToken(dir)
	if err != nil || b != a {
		t.Fatalf("second HostToken: %q, %v; want the first one", b, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "host-token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host-token file: %v, %v; want mode 0600", fi.Mode(), err)
	}
}
