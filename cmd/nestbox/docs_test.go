package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/testenv"
)

// TestDocs proves that the commands in README.md and docs/*.md work as
// written: it runs every shell block a user is meant to run against one
// real `nestbox up`, and checks what the blocks print.
//
// Which blocks run (parsed by parseDocBlocks, docblocks_test.go):
//
//   - ```sh, ```bash and ```shell blocks run; any other info string
//     (```text, ```console for a transcript, ```json, ```go, none for
//     diagrams and sample output) is never run.
//   - `<!-- docs-test: not run: REASON -->` on the last line before a run
//     block's fence keeps it from running, with the reason: blocks that
//     install packages, run `make run` itself, or need a second machine.
//   - An ```output block right after a run block lists what it prints:
//     each non-blank line must appear, in order, within the block's
//     standard output. Every run block must exit 0.
//
// How a block runs: in a fresh `bash` with `set -eo pipefail` (a failing
// line fails the block), stdin from /dev/null, starting in a directory
// laid out like a clone of this repository after `make run` (the
// repository's files linked in, bin/nestbox the binary under test, and
// e2b-app/node_modules the pinned E2B SDK of test/e2b, which a user gets
// from the block that runs npm install). No state passes between blocks:
// each must work on its own, as for a reader who starts at that section.
// The environment is the user's: no NESTBOX_ or E2B_ variables, `nestbox`
// on PATH, and NESTBOX_DATA_DIR naming the test platform's data directory.
// That platform listens on a free port with its state in a temporary
// directory, so in each block the defaults of `make run`,
// http://127.0.0.1:8080 and /var/lib/nestbox, are replaced by its URL and
// data directory before the block runs.
func TestDocs(t *testing.T) {
	files := []string{filepath.Join(repoRoot(), "README.md")}
	more, err := filepath.Glob(filepath.Join(repoRoot(), "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	var blocks []docBlock
	for _, f := range files {
		bs, err := readDocBlocks(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			b.file, _ = filepath.Rel(repoRoot(), b.file)
			if b.runnable() {
				blocks = append(blocks, b)
			}
		}
	}
	if len(blocks) < 5 {
		t.Fatalf("found %d run blocks in %v; the README alone has more", len(blocks), files)
	}

	for _, cmd := range []string{"bash", "curl", "node", "go", "sed"} {
		testenv.RequireCommand(t, cmd)
	}
	sdk := filepath.Join(repoRoot(), "test", "e2b", "node_modules")
	if _, err := os.Stat(filepath.Join(sdk, "e2b", "package.json")); err != nil {
		testenv.Missing(t, "the E2B SDK is not installed: run `npm ci` in test/e2b (or `make test-deps`)")
	}
	bin := buildNestbox(t)
	p := startUp(t)
	clone := userClone(t, bin, sdk)
	env := append(cleanEnv(),
		"NESTBOX_DATA_DIR="+p.dataDir,
		"PATH="+filepath.Join(clone, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
	)
	subst := strings.NewReplacer("http://127.0.0.1:8080", p.url, "/var/lib/nestbox", p.dataDir)

	for _, b := range blocks {
		if b.notRun != "" {
			// Not a subtest that skips: a deliberate choice, stated in the
			// docs, and no prerequisite that CI could be missing.
			t.Logf("%s not run: %s", b, b.notRun)
			continue
		}
		t.Run(b.String(), func(t *testing.T) {
			stdout, stderr, err := runDocBlock(clone, env, subst.Replace(b.text))
			if err != nil {
				t.Fatalf("block at %s: %v\n--- block\n%s--- stdout\n%s--- stderr\n%s", b, err, b.text, stdout, stderr)
			}
			if b.hasOut {
				if missing := matchOutput(b.output, stdout); missing != "" {
					t.Errorf("block at %s does not print %q\n--- stdout\n%s--- stderr\n%s", b, missing, stdout, stderr)
				}
			}
		})
	}
}

// runDocBlock runs script with bash in dir, failing on its first failing
// command, within three minutes.
func runDocBlock(dir string, env []string, script string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", "set -eo pipefail\n"+script)
	cmd.Dir, cmd.Env = dir, env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		err = errors.New("did not finish within 3 minutes")
	}
	return out.String(), errOut.String(), err
}

// userClone makes a directory that looks like a clone of this repository
// after `make run`: the repository's top-level files and directories
// linked in, bin/nestbox the binary under test, and e2b-app/node_modules
// the pinned E2B SDK (what the README's npm install step makes).
func userClone(t *testing.T, nestboxBin, sdk string) string {
	t.Helper()
	clone := filepath.Join(t.TempDir(), "nestbox")
	for _, dir := range []string{filepath.Join(clone, "bin"), filepath.Join(clone, "e2b-app")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(repoRoot())
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		filepath.Join(clone, "bin", "nestbox"):          nestboxBin,
		filepath.Join(clone, "e2b-app", "node_modules"): sdk,
	}
	for _, e := range entries {
		switch e.Name() {
		case "bin", ".git", "e2b-app":
			continue
		}
		links[filepath.Join(clone, e.Name())] = filepath.Join(repoRoot(), e.Name())
	}
	for link, target := range links {
		abs, err := filepath.Abs(target)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, link); err != nil {
			t.Fatal(err)
		}
	}
	return clone
}
