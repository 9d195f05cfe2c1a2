package process

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/processpb"
)

// TestConnectFollowers follows one process from its Start stream and two
// Connect streams (by pid and by tag, over both codecs): all three get the
// same output and end.
func TestConnectFollowers(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := ctxFor(t)
	req := shell(`read line; echo "got $line"; echo err >&2; exit 3`)
	req.Stdin = new(true)
	req.Tag = new("nestbox-follow")
	st, err := h.start(ctx, "json", req)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}

	byPIDStream, err := h.connect(ctx, "binary", byPID(pid))
	if err != nil {
		t.Fatal(err)
	}
	byTagStream, err := h.connect(ctx, "json", byTag("nestbox-follow"))
	if err != nil {
		t.Fatal(err)
	}
	// A Connect stream is subscribed before it sends its start event, so
	// once both have one no output can be missed.
	for name, s := range map[string]interface{ started() (uint32, error) }{"by pid": byPIDStream, "by tag": byTagStream} {
		got, err := s.started()
		if err != nil || got != pid {
			t.Fatalf("connect %s: start pid %d, %v; want %d", name, got, err, pid)
		}
	}
	if err := h.input(ctx, pid, stdinInput("hello\n")); err != nil {
		t.Fatal(err)
	}

	type waiter interface{ wait() (*result, error) }
	followers := map[string]waiter{"start": st, "connect by pid": byPIDStream, "connect by tag": byTagStream}
	results := make(chan error, len(followers))
	for name, f := range followers {
		go func() {
			res, err := f.wait()
			switch {
			case err != nil:
				results <- errors.New(name + ": " + err.Error())
			case res.stdout.String() != "got hello\n" || res.stderr.String() != "err\n":
				results <- errors.New(name + ": stdout " + res.stdout.String() + ", stderr " + res.stderr.String())
			case res.end.GetExitCode() != 3:
				results <- errors.New(name + ": end " + res.end.String())
			default:
				results <- nil
			}
		}()
	}
	for range followers {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
}

func TestConnectInvalid(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		name string
		sel  *processpb.ProcessSelector
		code connect.Code
	}{
		{"unknown pid", byPID(1 << 30), connect.CodeNotFound},
		{"unknown tag", byTag("nestbox-none"), connect.CodeNotFound},
		{"no selector", nil, connect.CodeInvalidArgument},
		{"empty selector", &processpb.ProcessSelector{}, connect.CodeInvalidArgument},
	}
	for _, codec := range codecs {
		for _, tt := range tests {
			s, err := h.connect(ctxFor(t), codec, tt.sel)
			if err == nil {
				_, err = s.next()
			}
			wantCode(t, codec+" connect "+tt.name, err, tt.code)
		}
	}
}

// TestDisconnectDoesNotKill: a client that goes away leaves its process
// running; another can connect, and kill it.
func TestDisconnectDoesNotKill(t *testing.T) {
	h := newHarness(t, Config{})
	// No deadline: the client would send it as Connect-Timeout-Ms, which
	// does kill (TestStartTimeoutKills).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := h.start(ctx, "json", cmd("sleep", "30"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	p := h.svc.procs.byPID(pid)
	waitFor(t, "the server to drop the follower", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.followers) == 0
	})

	list, err := h.clients["json"].List(ctxFor(t), connect.NewRequest(&processpb.ListRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if !listed(list.Msg, pid) {
		t.Fatalf("process %d is not listed after its client left: %v", pid, list.Msg)
	}
	c, err := h.connect(ctxFor(t), "json", byPID(pid))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.started(); err != nil {
		t.Fatal(err)
	}
	h.signal(t, pid, processpb.Signal_SIGNAL_SIGKILL)
	res, err := c.wait()
	if err != nil {
		t.Fatal(err)
	}
	checkEnd(t, "sleep", res.end, -1, "signal: killed")
}

// TestStartTimeoutKills: the stream deadline of Start (the SDK's timeoutMs,
// sent as Connect-Timeout-Ms) kills the process's group, as E2B's envd does.
func TestStartTimeoutKills(t *testing.T) {
	h := newHarness(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	st, err := h.start(ctx, "json", shell("sleep 30 & echo $!; wait"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.until(func(r *result) bool { return strings.HasSuffix(r.stdout.String(), "\n") }); err != nil {
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(st.res.stdout.String()))
	if err != nil {
		t.Fatalf("child pid %q: %v", st.res.stdout.String(), err)
	}
	_, err = st.wait()
	wantCode(t, "stream past its deadline", err, connect.CodeDeadlineExceeded)
	waitFor(t, "the process to leave the table", func() bool { return h.svc.procs.byPID(pid) == nil })
	waitGone(t, child)
}

// TestSlowFollower: a follower that stops reading is cut off with
// resource_exhausted; the process and the other follower go on and lose
// nothing.
func TestSlowFollower(t *testing.T) {
	h := newHarness(t, Config{FollowerBuffer: 4, FollowerTimeout: 100 * time.Millisecond})
	ctx := ctxFor(t)
	const n = 4 << 20
	req := shell("read go; head -c 4194304 /dev/zero")
	req.Stdin = new(true)
	st, err := h.start(ctx, "binary", req)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}
	slow := h.svc.procs.byPID(pid).subscribe() // never read until the end
	if err := h.input(ctx, pid, stdinInput("\n")); err != nil {
		t.Fatal(err)
	}
	res, err := st.wait()
	if err != nil {
		t.Fatal(err)
	}
	checkEnd(t, "head", res.end, 0, "exit status 0")
	if res.stdout.Len() != n {
		t.Errorf("the reading follower got %d bytes, want %d", res.stdout.Len(), n)
	}

	got := 0
	for ev := range slow.ch {
		got += len(ev.GetData().GetStdout())
	}
	if !errors.Is(slow.err, errdefs.ErrExhausted) || slow.end != nil {
		t.Errorf("slow follower ended with err %v, end %v; want resource exhausted", slow.err, slow.end)
	}
	if code := connect.CodeOf(errdefs.ToConnect(slow.err)); code != connect.CodeResourceExhausted {
		t.Errorf("slow follower's stream would end with %v, want %v", code, connect.CodeResourceExhausted)
	}
	if got >= n {
		t.Errorf("slow follower got all %d bytes; it should have been cut off", got)
	}
}

func TestList(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := ctxFor(t)
	req := &processpb.StartRequest{
		Process: &processpb.ProcessConfig{Cmd: "sleep", Args: []string{"30"}, Envs: map[string]string{"K": "V"}, Cwd: new("/tmp")},
		Tag:     new("nestbox-list"),
	}
	st, err := h.start(ctx, "binary", req)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := st.started()
	if err != nil {
		t.Fatal(err)
	}
	for _, codec := range codecs {
		list, err := h.clients[codec].List(ctx, connect.NewRequest(&processpb.ListRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Msg.GetProcesses()) != 1 {
			t.Fatalf("%s: List = %v, want one process", codec, list.Msg)
		}
		got := list.Msg.GetProcesses()[0]
		cfg := got.GetConfig()
		if got.GetPid() != pid || got.GetTag() != "nestbox-list" || cfg.GetCmd() != "sleep" ||
			strings.Join(cfg.GetArgs(), " ") != "30" || cfg.GetEnvs()["K"] != "V" || len(cfg.GetEnvs()) != 1 || cfg.GetCwd() != "/tmp" {
			t.Errorf("%s: List = %v, want pid %d with the config of %v", codec, got, pid, req)
		}
	}
	h.signal(t, pid, processpb.Signal_SIGNAL_SIGKILL)
	if _, err := st.wait(); err != nil {
		t.Fatal(err)
	}
	list, err := h.clients["json"].List(ctx, connect.NewRequest(&processpb.ListRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if listed(list.Msg, pid) {
		t.Errorf("process %d is listed after its end event", pid)
	}
}

func listed(l *processpb.ListResponse, pid uint32) bool {
	for _, p := range l.GetProcesses() {
		if p.GetPid() == pid {
			return true
		}
	}
	return false
}
