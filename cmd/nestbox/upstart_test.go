package main

import (
	"slices"
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
