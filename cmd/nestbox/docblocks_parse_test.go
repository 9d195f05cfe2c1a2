package main

import (
	"strings"
	"testing"
)

// TestParseDocBlocks: the conventions of the docs test, and the misspellings
// of them that must be errors rather than blocks silently not checked.
func TestParseDocBlocks(t *testing.T) {
	md := strings.Join([]string{
		"# t",
		"```sh",
		"echo one",
		"```",
		"",
		"```output",
		"one",
		"```",
		"<!-- docs-test: not run: installs things -->",
		"```bash",
		"apt-get install x",
		"```",
		"```text",
		"shown only",
		"```",
		"```",
		"a diagram",
		"```",
	}, "\n")
	blocks, err := parseDocBlocks("t.md", md)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 4 {
		t.Fatalf("got %d blocks, want 4: %+v", len(blocks), blocks)
	}
	if b := blocks[0]; !b.runnable() || b.line != 2 || b.text != "echo one\n" || !b.hasOut || b.output != "one\n" || b.notRun != "" {
		t.Errorf("first block: %+v", b)
	}
	if b := blocks[1]; !b.runnable() || b.notRun != "installs things" || b.hasOut {
		t.Errorf("second block: %+v", b)
	}
	if blocks[2].runnable() || blocks[3].runnable() || blocks[3].lang != "" {
		t.Errorf("text and plain blocks are run: %+v", blocks[2:])
	}

	for name, bad := range map[string]string{
		"marker without reason":  "<!-- docs-test: not run: -->\n```sh\nx\n```\n",
		"marker on a text block": "<!-- docs-test: not run: why -->\n```text\nx\n```\n",
		"output after text":      "```text\nx\n```\n```output\nx\n```\n",
		"output after prose":     "```sh\nx\n```\nprose\n```output\nx\n```\n",
		"two outputs":            "```sh\nx\n```\n```output\nx\n```\n```output\nx\n```\n",
		"unclosed fence":         "```sh\nx\n",
	} {
		if _, err := parseDocBlocks("t.md", bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestMatchOutput(t *testing.T) {
	for _, tc := range []struct {
		want, stdout, missing string
	}{
		{"Linux\n42\n", "Linux host 6.1\nx\n42\n", ""},
		{"42\nLinux\n", "Linux host\n42\n", "Linux"}, // order counts
		{"a\na\n", "a\n", "a"},                       // one line matches once
		{"\n  \n", "", ""},
		{"nbx_\n", "nope\n", "nbx_"},
	} {
		if got := matchOutput(tc.want, tc.stdout); got != tc.missing {
			t.Errorf("matchOutput(%q, %q) = %q, want %q", tc.want, tc.stdout, got, tc.missing)
		}
	}
}
