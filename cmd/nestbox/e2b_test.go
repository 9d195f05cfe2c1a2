package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/testenv"
)

// e2bDomain is the sandbox domain the E2B suite runs with; getHost()
// builds host names under it, which the suite sends as Host headers.
const e2bDomain = "nestbox.test"

// TestE2BSDKPlatform runs E2B's unmodified JS SDK against a real `nestbox
// up`, configured only through E2B_API_URL, E2B_SANDBOX_URL, E2B_DOMAIN
// and E2B_API_KEY: the control-plane scenarios of test/e2b/platform once
// with SDK 2.51.0 (the /v2 endpoints) and once with 2.45.0 (the older
// ones, and the e2b_ key check), and envd's own suites (test/e2b/envd) in
// their platform mode, through the control plane's sandbox routing.
func TestE2BSDKPlatform(t *testing.T) {
	node := testenv.RequireCommand(t, "node")
	suite := filepath.Join(repoRoot(), "test", "e2b")
	for _, mod := range []string{"e2b", "e2b-245"} {
		if _, err := os.Stat(filepath.Join(suite, "node_modules", mod, "package.json")); err != nil {
			testenv.Missing(t, "the E2B SDKs are not installed: run `npm ci` in test/e2b (or `make test-deps`)")
		}
	}
	platformFiles := testFiles(t, suite, "platform")
	envdFiles := testFiles(t, suite, "envd")
	p := startUp(t, "--domain", e2bDomain)
	env := func(extra ...string) map[string]string {
		m := map[string]string{
			"E2B_API_URL":     p.url,
			"E2B_SANDBOX_URL": p.url,
			"E2B_DOMAIN":      e2bDomain,
			"E2B_API_KEY":     apikey.E2BForm(p.key),
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	for _, sdk := range []string{"e2b", "e2b-245"} {
		t.Run(sdk, func(t *testing.T) {
			runNode(t, node, suite, platformFiles, env("NESTBOX_E2B_SDK", sdk))
		})
	}
	t.Run("envd-suites", func(t *testing.T) {
		runNode(t, node, suite, envdFiles, env("NESTBOX_E2B_MODE", "platform"))
	})
}

// testFiles lists the *.test.mjs files of dir in suite, relative to suite
// (Node 20 and 22 disagree on directory arguments).
func testFiles(t *testing.T, suite, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(suite, dir, "*.test.mjs"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files in %s/%s: %v", suite, dir, err)
	}
	for i, f := range files {
		files[i], _ = filepath.Rel(suite, f)
	}
	return files
}

// runNode runs node's test runner on files in dir and fails t if a test
// fails, logging node's output as it comes.
func runNode(t *testing.T, node, dir string, files []string, env map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	args := append([]string{"--test", "--test-reporter=spec", "--test-timeout=120000", "--test-concurrency=2"}, files...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "NO_COLOR=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// The runner forks a process per file: kill the whole group on timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		t.Log(line)
	}
	switch {
	case ctx.Err() != nil:
		t.Errorf("node --test did not finish within 8 minutes")
	case err != nil:
		t.Errorf("node --test failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
}

// cleanEnv is this process's environment without E2B or Nestbox settings it
// may have inherited.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "E2B_") || strings.HasPrefix(k, "NESTBOX_") || k == "NODE_OPTIONS" {
			continue
		}
		env = append(env, kv)
	}
	return env
}
