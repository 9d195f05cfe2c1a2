// Package testenv holds the rules Nestbox's tests share about their
// environment: a test whose prerequisite is missing may skip on a
// developer's machine but fails in CI (CI=true), so CI can never pass by
// skipping. Imported by _test.go files only.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run in CI.
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test with reason, or fails it in CI.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing in CI: %s", reason)
	}
	t.Skipf("prerequisite missing: %s", reason)
}

// RequireRoot skips (or, in CI, fails) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root")
	}
}

// RequireCommand skips (or, in CI, fails) unless name is on PATH.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, name+" not on PATH")
	}
	return p
}

// EnsureUser creates the local account name (with a home directory) unless
// it exists. It needs root; concurrent callers from other packages are fine.
func EnsureUser(t testing.TB, name string) {
	t.Helper()
	RequireRoot(t)
	if exec.Command("id", name).Run() == nil {
		return
	}
	out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", name).CombinedOutput()
	// Another package's tests may have created it at the same time.
	if exec.Command("id", name).Run() != nil {
		t.Fatalf("create user %s: %v: %s", name, err, out)
	}
}

// RequireCleanHome fails a CI run whose root login shells would read the
// machine's own startup files: tests that start `bash -l` as root on the
// host must run under scripts/clean-home.sh (make test does), because an
// operator's profile can stall every root shell (a stale pyenv lock did,
// for 60 s each). Outside CI the machine's files are accepted.
func RequireCleanHome(t testing.TB) {
	t.Helper()
	if InCI() && os.Geteuid() == 0 && os.Getenv("NESTBOX_CLEAN_HOME") != "done" {
		t.Fatal("root's login shells read this machine's startup files: run the tests through scripts/clean-home.sh (make test does)")
	}
}
