package cli

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestSplitGlobal(t *testing.T) {
	for _, tc := range []struct {
		args, global, rest []string
		err                bool
	}{
		{[]string{"capsule", "ls"}, nil, []string{"capsule", "ls"}, false},
		{[]string{"--url", "U", "capsule"}, []string{"--url", "U"}, []string{"capsule"}, false},
		{[]string{"--url=U", "-api-key", "K", "ls"}, []string{"--url=U", "-api-key", "K"}, []string{"ls"}, false},
		{[]string{"--api-key", "K", "--json"}, []string{"--api-key", "K"}, []string{"--json"}, false},
		{[]string{"--", "--url", "U"}, nil, []string{"--", "--url", "U"}, false},
		{[]string{"--url"}, nil, nil, true},
		{[]string{"---url=U"}, []string{"---url=U"}, nil, false}, // the flag package judges it
	} {
		global, rest, err := SplitGlobal(tc.args)
		if (err != nil) != tc.err || !reflect.DeepEqual(global, tc.global) || !slices.Equal(rest, tc.rest) {
			t.Errorf("SplitGlobal(%q) = %q, %q, %v; want %q, %q (error %v)", tc.args, global, rest, err, tc.global, tc.rest, tc.err)
		}
	}
}

// TestGlobalFlagsInGroup: a group takes the global flags before its verb,
// and they reach the verb's client.
func TestGlobalFlagsInGroup(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("c1", nil)
	var stdio IO
	var out, errOut strings.Builder
	stdio.Stdout, stdio.Stderr = &out, &errOut
	stdio.Getenv = func(k string) string {
		if k == "NESTBOX_DATA_DIR" {
			return t.TempDir()
		}
		return ""
	}
	if err := Capsule(t.Context(), []string{"--url", f.url, "--api-key=" + fakeKey, "ls"}, stdio); err != nil || !strings.Contains(out.String(), "c1") {
		t.Fatalf("capsule --url U --api-key=K ls: %v, stdout %q, stderr %q", err, out.String(), errOut.String())
	}
}

// FuzzSplitGlobal: SplitGlobal only splits: what it returns, put back
// together, is its input, and the rest never starts with a global flag.
func FuzzSplitGlobal(f *testing.F) {
	f.Add("--url\x00U\x00capsule\x00ls")
	f.Add("--api-key=K\x00-url\x00")
	f.Add("--\x00--url")
	f.Add("-\x00x")
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		global, rest, err := SplitGlobal(args)
		if err != nil {
			return
		}
		if got := append(slices.Clone(global), rest...); !slices.Equal(got, args) {
			t.Fatalf("SplitGlobal(%q) = %q + %q", args, global, rest)
		}
		if len(rest) > 0 && strings.HasPrefix(rest[0], "-") && rest[0] != "-" && rest[0] != "--" {
			name, _, _ := strings.Cut(strings.TrimLeft(rest[0], "-"), "=")
			if isGlobal(name) {
				t.Fatalf("SplitGlobal(%q) left the global flag %q in the rest", args, rest[0])
			}
		}
	})
}
