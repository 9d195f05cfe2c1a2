package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nestbox.dev"
)

func TestCredentialsRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, _, err := nestbox.LoadCredentials(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadCredentials of nothing: %v, want fs.ErrNotExist", err)
	}
	if err := WriteCredentials(dir, "http://127.0.0.1:8080", "nbx_k"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(nestbox.CredentialsPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(nestbox.CredentialsPath(dir))
	if !strings.Contains(string(b), `"api_key": "nbx_k"`) || !strings.Contains(string(b), `"url": "http://127.0.0.1:8080"`) {
		t.Errorf("file = %s", b)
	}
	// Rewriting replaces the file and leaves no temporary behind.
	if err := WriteCredentials(dir, "http://h:1", "nbx_2"); err != nil {
		t.Fatal(err)
	}
	url, key, err := nestbox.LoadCredentials(dir)
	if err != nil || url != "http://h:1" || key != "nbx_2" {
		t.Errorf("LoadCredentials = %q, %q, %v", url, key, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want 1", len(entries))
	}
}

func TestResolveConnection(t *testing.T) {
	dir := t.TempDir()
	if err := WriteCredentials(dir, "http://local:8080/", "nbx_file"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name             string
		flagURL, flagKey string
		env              map[string]string
		wantURL, wantKey string
		wantErr          string
	}{
		{"flags win", "http://f", "nbx_f", map[string]string{"NESTBOX_URL": "http://e", "NESTBOX_API_KEY": "nbx_e"}, "http://f", "nbx_f", ""},
		{"env", "", "", map[string]string{"NESTBOX_URL": "http://e", "NESTBOX_API_KEY": "nbx_e"}, "http://e", "nbx_e", ""},
		{"file", "", "", map[string]string{"NESTBOX_DATA_DIR": dir}, "http://local:8080/", "nbx_file", ""},
		{"flag key, file URL", "", "nbx_f", map[string]string{"NESTBOX_DATA_DIR": dir}, "http://local:8080/", "nbx_f", ""},
		{"file key for the file's URL", "http://local:8080", "", map[string]string{"NESTBOX_DATA_DIR": dir}, "http://local:8080", "nbx_file", ""},
		{"file key never for another URL", "http://remote", "", map[string]string{"NESTBOX_DATA_DIR": dir}, "", "", "no API key"},
		{"nothing", "", "", map[string]string{"NESTBOX_DATA_DIR": t.TempDir()}, "", "", "no control plane URL"},
	}
	for _, tt := range tests {
		url, key, err := resolveConnection(tt.flagURL, tt.flagKey, func(k string) string { return tt.env[k] })
		if url != tt.wantURL || key != tt.wantKey || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: got %q, %q, %v; want %q, %q, error %q", tt.name, url, key, err, tt.wantURL, tt.wantKey, tt.wantErr)
		}
	}
}
