package main

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitTemplates(t *testing.T) {
	for _, tc := range []struct {
		in    []string
		first string
		rest  []string
	}{
		{nil, "", nil},
		{[]string{"base"}, "base", []string{}},
		{[]string{"base", "minimal"}, "minimal", []string{"base"}},
		{[]string{"minimal", "base"}, "minimal", []string{"base"}},
		{[]string{"a", "base", "minimal", "b"}, "minimal", []string{"a", "base", "b"}},
	} {
		first, rest := splitTemplates(tc.in)
		if first != tc.first || !slices.Equal(rest, tc.rest) {
			t.Errorf("splitTemplates(%v) = %q, %v; want %q, %v", tc.in, first, rest, tc.first, tc.rest)
		}
	}
	in := []string{"base", "minimal"}
	splitTemplates(in)
	if !slices.Equal(in, []string{"base", "minimal"}) {
		t.Errorf("splitTemplates changed its argument: %v", in)
	}
}

func TestWelcome(t *testing.T) {
	cfg := upConfig{dataDir: "/data", publicURL: "http://127.0.0.1:8080"}
	for _, tc := range []struct {
		name     string
		key      string
		building []string
		want     []string
		not      []string
	}{
		{"first start", "nbx_k", []string{"base"}, []string{"Template base is being built", "API key: nbx_k", "capsule create"}, []string{"Templates"}},
		{"restart, all built", "", nil, []string{"API key: in /data/credentials.json", "capsule create"}, []string{"being built", "nbx_"}},
		{"two building", "", []string{"base", "python"}, []string{"Templates base, python are being built"}, nil},
	} {
		var b strings.Builder
		printWelcome(&b, cfg, tc.key, tc.building, []string{"/logs"})
		out := b.String()
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: welcome lacks %q:\n%s", tc.name, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("%s: welcome has %q:\n%s", tc.name, w, out)
			}
		}
		// The command to try is the last thing printed.
		if lines := strings.Split(strings.TrimSpace(out), "\n"); !strings.Contains(lines[len(lines)-1], "uname -a") {
			t.Errorf("%s: last line %q, want the command to try", tc.name, lines[len(lines)-1])
		}
	}
}
