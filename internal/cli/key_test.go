package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestKeyCreate(t *testing.T) {
	f := newFakeServer(t)
	res := f.run(t, Key, "", "create", "--name", "ci")
	if res.err != nil {
		t.Fatal(res.err)
	}
	for _, want := range []string{
		"key1", "ci",
		"NESTBOX_API_KEY:   nbx_abcdef0123456789abcdef0123456789abcdef",
		"E2B_API_KEY:       e2b_abcdef0123456789abcdef0123456789abcdef",
		"E2B's SDKs",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	if !strings.Contains(res.stderr, "only this once") {
		t.Errorf("stderr %q does not warn that the secret is shown once", res.stderr)
	}

	res = f.run(t, Key, "", "create", "--name", "ci2", "--json")
	var got map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("--json printed %q: %v", res.stdout, err)
	}
	if got["key"] != "nbx_abcdef0123456789abcdef0123456789abcdef" || got["e2b_key"] != "e2b_abcdef0123456789abcdef0123456789abcdef" || got["name"] != "ci2" {
		t.Errorf("--json = %v", got)
	}

	if res := f.run(t, Key, "", "create"); res.err == nil {
		t.Error("create without --name succeeded")
	}
}

func TestKeyListAndRemove(t *testing.T) {
	f := newFakeServer(t)
	f.run(t, Key, "", "create", "--name", "one")
	f.run(t, Key, "", "create", "--name", "two")
	res := f.run(t, Key, "", "ls")
	if res.err != nil || !strings.Contains(res.stdout, "one") || !strings.Contains(res.stdout, "nbx_abcd...") || strings.Contains(res.stdout, "nbx_abcdef01") {
		t.Errorf("ls: %v\n%s", res.err, res.stdout)
	}
	res = f.run(t, Key, "", "rm", "key1")
	if res.err != nil || res.stdout != "key1\n" || len(f.keys) != 1 {
		t.Errorf("rm: %q, %v; %d keys left", res.stdout, res.err, len(f.keys))
	}
	res = f.run(t, Key, "", "rm", "key1")
	if res.err == nil || !strings.Contains(res.err.Error(), "(not_found)") {
		t.Errorf("rm of a removed key: err = %v", res.err)
	}
}

func TestTemplateList(t *testing.T) {
	f := newFakeServer(t)
	res := f.run(t, Template, "", "ls")
	if res.err != nil {
		t.Fatal(res.err)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "base") || !strings.Contains(lines[1], "300.0 MiB") {
		t.Errorf("template ls:\n%s", res.stdout)
	}
	res = f.run(t, Template, "", "ls", "--json")
	if res.err != nil || !json.Valid([]byte(res.stdout)) || !strings.Contains(res.stdout, `"templates"`) {
		t.Errorf("template ls --json: %v\n%s", res.err, res.stdout)
	}
}
