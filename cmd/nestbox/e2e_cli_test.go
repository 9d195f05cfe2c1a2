package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
)

// TestEndToEndCLI drives a real `nestbox up` through the built nestbox
// binary, as a user on the same machine would: the CLI finds the API and
// the key in the data directory.
func TestEndToEndCLI(t *testing.T) {
	p := startUp(t)
	bin := buildNestbox(t)
	run := func(stdin io.Reader, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		// A command that hangs (a shell waiting for input) is killed.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "NESTBOX_DATA_DIR="+p.dataDir, "NESTBOX_URL=", "NESTBOX_API_KEY=")
		cmd.Stdin = stdin
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			t.Fatalf("nestbox %v: %v", args, err)
		}
		return out.String(), errOut.String(), code
	}
	must := func(args ...string) string {
		t.Helper()
		out, errOut, code := run(nil, args...)
		if code != 0 {
			t.Fatalf("nestbox %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}

	id := strings.TrimSpace(must("capsule", "create", "--metadata", "via=cli", "--env", "FOO=bar"))
	if len(id) != 20 {
		t.Fatalf("capsule create printed %q, want an ID", id)
	}
	var c nestbox.Capsule
	if err := json.Unmarshal([]byte(must("capsule", "get", id, "--json")), &c); err != nil || c.Status != nestbox.StatusRunning || c.Metadata["via"] != "cli" {
		t.Fatalf("capsule get --json: %+v, %v", c, err)
	}
	if ls := must("capsule", "ls"); !strings.Contains(ls, id) || !strings.Contains(ls, "running") {
		t.Fatalf("capsule ls does not show the capsule:\n%s", ls)
	}

	// exec passes output and the exit code through.
	out, errOut, code := run(nil, "capsule", "exec", id, "--", "bash", "-c", `echo "$FOO"; echo warn >&2; exit 7`)
	if code != 7 || out != "bar\n" || !strings.Contains(errOut, "warn") {
		t.Fatalf("capsule exec: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// stdin reaches the command.
	out, _, code = run(strings.NewReader("piped\n"), "capsule", "exec", id, "--", "cat")
	if code != 0 || out != "piped\n" {
		t.Fatalf("capsule exec with stdin: exit %d, %q", code, out)
	}

	// shell without a terminal: keystrokes from stdin.
	out, errOut, code = run(strings.NewReader("echo $((6*7))\nexit\n"), "capsule", "shell", id)
	if code != 0 || !strings.Contains(out, "42") {
		t.Fatalf("capsule shell: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The end of input that is not a terminal ends the shell (Ctrl-D).
	out, errOut, code = run(strings.NewReader("echo $((6*7))\n"), "capsule", "shell", id)
	if code != 0 || !strings.Contains(out, "42") {
		t.Fatalf("capsule shell fed without exit: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// cp both ways, 50 MB, compared by hash.
	dir := t.TempDir()
	src := filepath.Join(dir, "blob")
	f, _ := os.Create(src)
	up := sha256.New()
	io.Copy(io.MultiWriter(f, up), io.LimitReader(rand.NewChaCha8([32]byte{9}), 50<<20))
	f.Close()
	must("capsule", "cp", src, id+":/home/user/blob")
	dst := filepath.Join(dir, "back")
	must("capsule", "cp", id+":/home/user/blob", dst)
	down := sha256.New()
	g, _ := os.Open(dst)
	io.Copy(down, g)
	g.Close()
	if !bytes.Equal(up.Sum(nil), down.Sum(nil)) {
		t.Fatal("the file copied back differs from the one copied in")
	}

	// The proxy, with the key the CLI uses.
	must("capsule", "exec", id, "--", "bash", "-c", "mkdir -p /tmp/www/a && echo page > /tmp/www/a/index.html && (setsid python3 -m http.server 8081 --directory /tmp/www >/dev/null 2>&1 &)")
	req, _ := http.NewRequest("GET", p.url+"/proxy/"+id+"/8081/a/", nil)
	req.Header.Set("X-API-Key", p.key)
	body := ""
	for attempt := 0; attempt < 50 && body != "page\n"; attempt++ {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
	}
	if body != "page\n" {
		t.Fatalf("proxy: %q", body)
	}

	if m := must("capsule", "metrics", id, "--json"); !strings.Contains(m, "memory_total_bytes") {
		t.Fatalf("capsule metrics --json: %s", m)
	}

	// Issue 10's input a user gets wrong. One source of sizes: the disk
	// the host gave the capsule is recorded, and metrics report it.
	var m nestbox.Metrics
	if err := json.Unmarshal([]byte(must("capsule", "metrics", id, "--json")), &m); err != nil || c.DiskMB <= 0 || m.DiskTotalBytes != uint64(c.DiskMB)<<20 {
		t.Errorf("capsule get says disk_mb %d, metrics disk_total_bytes %d (%v); want the same size", c.DiskMB, m.DiskTotalBytes, err)
	}
	// More vCPUs than the host's cores: refused, naming them.
	_, errOut, code = run(nil, "capsule", "create", "--vcpus", strconv.Itoa(runtime.NumCPU()+1))
	if code != 1 || !strings.Contains(errOut, fmt.Sprintf("host's %d cores", runtime.NumCPU())) {
		t.Errorf("create with more vCPUs than cores: exit %d, %q", code, errOut)
	}
	// A missing program, a file that is not executable: as in a shell.
	for prog, want := range map[string]int{"nosuchprog": 127, "/etc/passwd": 126} {
		_, errOut, code = run(nil, "capsule", "exec", id, "--", prog)
		if code != want || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || strings.Count(errOut, "start process") != 1 {
			t.Errorf("exec %s: exit %d, stderr %q; want %d and one line", prog, code, errOut, want)
		}
	}
	// A global flag before the group is taken (a wrong key proves it).
	_, errOut, code = run(nil, "--api-key", "nbx_"+strings.Repeat("0", 40), "capsule", "ls")
	if code != 1 || !strings.Contains(errOut, "unauthenticated") {
		t.Errorf("--api-key before the group: exit %d, %q", code, errOut)
	}
	if tl := must("template", "ls"); !strings.Contains(tl, "base") || !strings.Contains(tl, "minimal") {
		t.Fatalf("template ls:\n%s", tl)
	}
	key := must("key", "create", "--name", "ci")
	if !strings.Contains(key, "nbx_") || !strings.Contains(key, "e2b_") {
		t.Fatalf("key create shows no key (in both forms):\n%s", key)
	}

	// fork: the five forks start with the source's files, env and a
	// process it left running; what each writes afterwards stays its own.
	must("capsule", "exec", id, "--", "bash", "-c", `echo before > /tmp/state; (sleep 600 &) ; true`)
	forks := strings.Fields(must("capsule", "fork", "--count", "5", id))
	seen := map[string]bool{id: true}
	for _, f := range forks {
		seen[f] = true
	}
	if len(forks) != 5 || len(seen) != 6 {
		t.Fatalf("capsule fork printed %q, want five new IDs", forks)
	}
	for i, f := range forks {
		out := must("capsule", "exec", f, "--", "bash", "-c", `cat /tmp/state; echo "$FOO"; pgrep -c -f "sleep 600"`)
		if out != "before\nbar\n1\n" {
			t.Fatalf("fork %d (%s): %q, want the source's file, env and its sleep", i, f, out)
		}
		must("capsule", "exec", f, "--", "bash", "-c", "echo fork"+strconv.Itoa(i)+" > /tmp/state")
	}
	must("capsule", "exec", id, "--", "bash", "-c", "echo source > /tmp/state")
	for i, c := range append([]string{id}, forks...) {
		want := "source\n"
		if i > 0 {
			want = "fork" + strconv.Itoa(i-1) + "\n"
		}
		if got := must("capsule", "exec", c, "--", "cat", "/tmp/state"); got != want {
			t.Errorf("capsule %s after the forks wrote: %q, want %q", c, got, want)
		}
	}
	must(append([]string{"capsule", "rm"}, forks...)...)

	must("capsule", "rm", id)
	if err := json.Unmarshal([]byte(must("capsule", "get", id, "--json")), &c); err != nil || c.Status != nestbox.StatusStopped {
		t.Fatalf("after capsule rm: %+v, %v", c, err)
	}
	if logs := must("capsule", "logs", id); !strings.Contains(logs, "stopping") || !strings.Contains(logs, "stopped") {
		t.Fatalf("capsule logs:\n%s", logs)
	}
	_, errOut, code = run(nil, "capsule", "get", "aaaaaaaaaaaaaaaaaaaa")
	if code == 0 || !strings.Contains(errOut, "not_found") {
		t.Fatalf("capsule get of an unknown ID: exit %d, %q", code, errOut)
	}
}
