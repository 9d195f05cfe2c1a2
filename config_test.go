package nestbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolveConnection(t *testing.T) {
	dir := t.TempDir()
	creds := `{"url":"http://127.0.0.1:8080","api_key":"nbx_file"}`
	if err := os.WriteFile(filepath.Join(dir, "credentials.json"), []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, tc := range []struct {
		name             string
		cfgURL, cfgKey   string
		env              map[string]string
		wantURL, wantKey string
		wantErr          bool
	}{
		{name: "config wins", cfgURL: "http://cfg", cfgKey: "k", env: map[string]string{EnvURL: "http://env", EnvAPIKey: "e", EnvDataDir: dir}, wantURL: "http://cfg", wantKey: "k"},
		{name: "environment before file", env: map[string]string{EnvURL: "http://env", EnvAPIKey: "e", EnvDataDir: dir}, wantURL: "http://env", wantKey: "e"},
		{name: "file when nothing else", env: map[string]string{EnvDataDir: dir}, wantURL: "http://127.0.0.1:8080", wantKey: "nbx_file"},
		{name: "env key with file url", env: map[string]string{EnvAPIKey: "e", EnvDataDir: dir}, wantURL: "http://127.0.0.1:8080", wantKey: "e"},
		{name: "file key only for the file's url", env: map[string]string{EnvURL: "http://127.0.0.1:8080/", EnvDataDir: dir}, wantURL: "http://127.0.0.1:8080/", wantKey: "nbx_file"},
		{name: "file key never sent elsewhere", env: map[string]string{EnvURL: "http://other:8080", EnvDataDir: dir}, wantErr: true},
		{name: "no file, nothing set", env: map[string]string{EnvDataDir: empty}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, key, err := resolveConnection(tc.cfgURL, tc.cfgKey, func(k string) string { return tc.env[k] })
			if tc.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("got %q, %q, %v; want an ErrInvalid", url, key, err)
				}
				return
			}
			if err != nil || url != tc.wantURL || key != tc.wantKey {
				t.Fatalf("got %q, %q, %v; want %q, %q", url, key, err, tc.wantURL, tc.wantKey)
			}
		})
	}
}

func TestResolveConnectionBadFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "credentials.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := resolveConnection("", "", func(k string) string { return map[string]string{EnvDataDir: dir}[k] })
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid naming the bad file", err)
	}
}
