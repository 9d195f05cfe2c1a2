package process

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"
)

// TestReapOrphans: a double fork leaves an orphan that is re-parented to
// this process (a subreaper here, PID 1 in a sandbox); the reaper must reap
// it when it exits, and no zombie child may remain.
func TestReapOrphans(t *testing.T) {
	h := newHarness(t, Config{})
	res, err := h.run(t, "binary", shell("(sleep 0.3 >/dev/null 2>&1 & echo $!); exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	checkEnd(t, "sh", res.end, 0, "exit status 0")
	orphan, err := strconv.Atoi(strings.TrimSpace(res.stdout.String()))
	if err != nil {
		t.Fatalf("orphan pid %q: %v", res.stdout.String(), err)
	}
	if state, ppid, ok := procState(orphan); ok && state != "Z" && ppid != os.Getpid() {
		t.Errorf("orphan %d has parent %d, want this process %d (subreaper)", orphan, ppid, os.Getpid())
	}
	waitGone(t, orphan)
	waitFor(t, "no zombie children", func() bool { return len(zombieChildren()) == 0 })
}

// zombieChildren lists the children of this process that nobody reaped.
func zombieChildren() []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, path := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if state, ppid, ok := procState(pid); ok && state == "Z" && ppid == os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// TestClose: Close ends the streams with unavailable but leaves the
// processes running, and refuses new ones.
func TestClose(t *testing.T) {
	h := newHarness(t, Config{})
	st, err := h.start(ctxFor(t), "json", cmd("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = st.wait()
	wantCode(t, "stream after Close", err, connect.CodeUnavailable)
	if state, _, ok := procState(int(pid)); !ok || state == "Z" {
		t.Errorf("process %d did not survive Close (state %q)", pid, state)
	}
	_, err = h.run(t, "json", cmd("true"))
	wantCode(t, "Start after Close", err, connect.CodeUnavailable)

	// The reaper is gone: reap it here.
	if err := killPID(int(pid)); err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(int(pid), &ws, 0, nil); err != nil {
		t.Fatalf("wait4(%d): %v", pid, err)
	}
}

func TestNewWithoutSettings(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without settings succeeded")
	}
}
