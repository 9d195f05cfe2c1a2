package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// The docs test's view of a Markdown file: its fenced code blocks, and
// which of them a user is meant to run. The conventions (also stated at
// the top of docs_test.go):
//
//   - A block fenced as ```sh, ```bash or ```shell is a command a user
//     runs: the test runs it. Every other info string (```text, ```console,
//     ```json, ```go, none) is shown, never run.
//   - A run block that must not run in the test (it installs packages,
//     starts `make run`, needs a second machine) is preceded, as the last
//     line before its fence, by `<!-- docs-test: not run: REASON -->`; the
//     reason is required (blank lines between are allowed).
//   - A run block may be followed (blank lines between allowed) by an
//     ```output block: each of its non-blank lines must appear, in order,
//     as a substring of a line of the block's standard output.

const notRunMarker = "<!-- docs-test: not run:"

// docBlock is one fenced code block of a Markdown file.
type docBlock struct {
	file   string
	line   int    // of the opening fence, 1-based
	lang   string // first word of the info string
	text   string // the lines between the fences
	notRun string // the reason given by a not-run marker
	output string // the ```output block that follows, if any
	hasOut bool
}

// runnable says whether the block is a command a user is meant to run.
func (b docBlock) runnable() bool {
	switch b.lang {
	case "sh", "bash", "shell":
		return true
	}
	return false
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// readDocBlocks reads the fenced code blocks of the Markdown file at path.
func readDocBlocks(path string) ([]docBlock, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read docs %s: %w", path, err)
	}
	return parseDocBlocks(path, string(b))
}

// parseDocBlocks splits Markdown into its fenced blocks, attaching not-run
// markers and output blocks to the run blocks they belong to. A marker
// without a reason or on a block that is not run, an output block that
// follows no run block, and an unclosed fence are errors: the conventions
// must not be misspelt silently.
func parseDocBlocks(name, md string) ([]docBlock, error) {
	var (
		blocks  []docBlock
		cur     *docBlock
		body    []string
		prev    string // the last line outside blocks
		blankSo bool   // only blank lines since the last block closed
	)
	sc := bufio.NewScanner(strings.NewReader(md))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur != nil {
			if trimmed == "```" {
				cur.text = strings.Join(body, "\n") + "\n"
				if err := attach(&blocks, *cur, blankSo); err != nil {
					return nil, err
				}
				cur, body, blankSo, prev = nil, nil, true, ""
				continue
			}
			body = append(body, line)
			continue
		}
		if info, ok := strings.CutPrefix(trimmed, "```"); ok {
			cur = &docBlock{file: name, line: n, lang: strings.Fields(info + " x")[0]}
			if cur.lang == "x" {
				cur.lang = ""
			}
			if reason, ok := strings.CutPrefix(strings.TrimSpace(prev), notRunMarker); ok {
				reason = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(reason), "-->"))
				if reason == "" {
					return nil, fmt.Errorf("%s:%d: a not-run marker needs a reason", name, n-1)
				}
				if !cur.runnable() {
					return nil, fmt.Errorf("%s:%d: a not-run marker on a ```%s block, which is never run", name, n-1, cur.lang)
				}
				cur.notRun = reason
			}
			continue
		}
		if trimmed != "" {
			blankSo = false
			prev = line
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%s:%d: the fence is never closed", name, cur.line)
	}
	return blocks, sc.Err()
}

// attach appends b to blocks, or, for an ```output block, gives it to the
// run block just before it.
func attach(blocks *[]docBlock, b docBlock, adjacent bool) error {
	if b.lang != "output" {
		*blocks = append(*blocks, b)
		return nil
	}
	last := len(*blocks) - 1
	if !adjacent || last < 0 || !(*blocks)[last].runnable() || (*blocks)[last].hasOut {
		return fmt.Errorf("%s:%d: an ```output block must directly follow a run block", b.file, b.line)
	}
	(*blocks)[last].output, (*blocks)[last].hasOut = b.text, true
	return nil
}

// matchOutput checks stdout against an ```output block: each non-blank
// line of want must be a substring of a line of stdout, in order. It
// returns the first wanted line not found, or "".
func matchOutput(want, stdout string) string {
	got := strings.Split(stdout, "\n")
	i := 0
	for _, w := range strings.Split(want, "\n") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		for i < len(got) && !strings.Contains(got[i], w) {
			i++
		}
		if i == len(got) {
			return w
		}
		i++
	}
	return ""
}
