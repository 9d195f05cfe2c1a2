package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
)

// TestEndToEndSDK drives a real `nestbox up` through the Go SDK: create,
// exec, a terminal, a 50 MB round trip, the port proxy, destroy.
func TestEndToEndSDK(t *testing.T) {
	p := startUp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	c, err := p.client.Create(ctx, nestbox.CreateCapsuleRequest{
		EnvVars:  map[string]string{"GREETING": "hello"},
		Metadata: map[string]string{"test": "e2e"},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil || info.Status != nestbox.StatusRunning || info.Template != "base" {
		t.Fatalf("created capsule: %+v, %v", info, err)
	}

	t.Run("exec", func(t *testing.T) {
		res, err := c.Exec(ctx, []string{"bash", "-c", `echo "$GREETING from $(whoami)"; echo oops >&2; exit 3`})
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 3 || res.Stdout != "hello from user\n" || res.Stderr != "oops\n" {
			t.Fatalf("exec: %+v", res)
		}
		res, err = c.Exec(ctx, []string{"id", "-u"}, nestbox.WithUser("root"))
		if err != nil || res.Stdout != "0\n" {
			t.Fatalf("exec as root: %+v, %v", res, err)
		}
	})

	t.Run("pty", func(t *testing.T) {
		term, err := c.PTY(ctx, nestbox.PTYOptions{Cols: 80, Rows: 24})
		if err != nil {
			t.Fatal(err)
		}
		defer term.Close()
		if _, err := term.Write([]byte("echo $((6*7))\n")); err != nil {
			t.Fatal(err)
		}
		if out := readUntil(t, term, "42\r\n"); !strings.Contains(out, "42") {
			t.Fatalf("terminal output %q has no 42", out)
		}
		term.Write([]byte("exit 5\n"))
		code, err := term.Wait()
		if err != nil || code != 5 {
			t.Fatalf("terminal exit: %d, %v; want 5", code, err)
		}
	})

	t.Run("background and reattach", func(t *testing.T) {
		pid, err := c.Start(ctx, []string{"bash", "-c", "for i in 1 2 3 4 5; do echo tick$i; sleep 0.3; done; exit 4"}, nestbox.WithTag("ticker"))
		if err != nil || pid == 0 {
			t.Fatalf("start: %d, %v", pid, err)
		}
		ps, err := c.Processes(ctx)
		if err != nil || !hasProcess(ps, pid, "ticker") {
			t.Fatalf("processes %+v (%v) lack pid %d tagged ticker", ps, err, pid)
		}
		st, err := c.AttachTag(ctx, "ticker")
		if err != nil {
			t.Fatal(err)
		}
		// Output written after the attach arrives live.
		readUntil(t, st.Stdout(), "tick5")
		code, err := st.Wait()
		if err != nil || code != 4 {
			t.Fatalf("attached process: exit %d, %v; want 4", code, err)
		}
		// A background process can be killed by pid.
		pid, err = c.Start(ctx, []string{"sleep", "600"})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Signal(ctx, pid, nestbox.SignalKill); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			ps, _ := c.Processes(ctx)
			if !hasProcess(ps, pid, "") {
				break
			}
			if i == 50 {
				t.Fatalf("pid %d still runs after SIGKILL", pid)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("pty reattach", func(t *testing.T) {
		term, err := c.PTY(ctx, nestbox.PTYOptions{Tag: "work"})
		if err != nil {
			t.Fatal(err)
		}
		term.Write([]byte("export MARK=reattached\n"))
		term.Write([]byte("echo ready-$((1+1))\n"))
		readUntil(t, term, "ready-2")
		term.Close() // the shell keeps running
		again, err := c.PTY(ctx, nestbox.PTYOptions{Tag: "work", Cols: 100, Rows: 30})
		if err != nil {
			t.Fatal(err)
		}
		defer again.Close()
		if again.Pid() != term.Pid() {
			t.Fatalf("reattached to pid %d, want the first shell's %d", again.Pid(), term.Pid())
		}
		again.Write([]byte("echo $MARK $(stty size)\n"))
		readUntil(t, again, "reattached 30 100")
		again.Write([]byte("exit\n"))
		if code, err := again.Wait(); err != nil || code != 0 {
			t.Fatalf("exit: %d, %v", code, err)
		}
	})

	t.Run("files", func(t *testing.T) {
		const size = 50 << 20
		src := io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), size)
		up := sha256.New()
		e, err := c.WriteFile(ctx, "/home/user/data/blob.bin", io.TeeReader(src, up))
		if err != nil {
			t.Fatal(err)
		}
		if e.Size != size || e.Type != nestbox.EntryFile {
			t.Fatalf("uploaded entry %+v", e)
		}
		r, err := c.ReadFile(ctx, "/home/user/data/blob.bin")
		if err != nil {
			t.Fatal(err)
		}
		down := sha256.New()
		n, err := io.Copy(down, r)
		r.Close()
		if err != nil || n != size {
			t.Fatalf("download: %d bytes, %v", n, err)
		}
		if !bytes.Equal(up.Sum(nil), down.Sum(nil)) {
			t.Fatal("the downloaded file differs from the uploaded one")
		}
		es, err := c.ListDir(ctx, "/home/user/data", 1)
		if err != nil || len(es) != 1 || es[0].Name != "blob.bin" {
			t.Fatalf("list: %+v, %v", es, err)
		}
		if _, err := c.MakeDir(ctx, "/home/user/data/sub/dir"); err != nil {
			t.Fatal(err)
		}
		if err := c.Remove(ctx, "/home/user/data"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Stat(ctx, "/home/user/data"); !errors.Is(err, nestbox.ErrNotFound) {
			t.Fatalf("stat of a removed directory: %v, want not found", err)
		}
	})

	t.Run("proxy", func(t *testing.T) {
		res, err := c.Exec(ctx, []string{"bash", "-c", "mkdir -p /tmp/site/docs && echo hi > /tmp/site/docs/readme.txt"})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("prepare site: %+v, %v", res, err)
		}
		if _, err := c.Start(ctx, []string{"python3", "-m", "http.server", "8000", "--directory", "/tmp/site"}); err != nil {
			t.Fatal(err)
		}
		hc := p.client.HTTPClient()
		noFollow := *hc
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		base := c.ProxyURL(8000)
		// A directory without its slash: Python redirects, and the
		// redirect must stay under the proxy's prefix.
		var resp *http.Response
		for attempt := 0; ; attempt++ {
			resp, err = noFollow.Get(base + "docs")
			if err == nil && resp.StatusCode != http.StatusBadGateway {
				break
			}
			if resp != nil {
				resp.Body.Close()
			}
			if attempt == 50 {
				t.Fatalf("the web server did not come up: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		resp.Body.Close()
		wantLoc := "/proxy/" + c.ID() + "/8000/docs/"
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != wantLoc {
			t.Fatalf("GET docs: %d Location %q, want 301 to %q", resp.StatusCode, resp.Header.Get("Location"), wantLoc)
		}
		resp, err = hc.Get(base + "docs")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "readme.txt") {
			t.Fatalf("directory listing after the redirect: %d %s", resp.StatusCode, body)
		}
		resp, err = hc.Get(base + "docs/readme.txt")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hi\n" {
			t.Fatalf("file through the proxy: %q", body)
		}
	})

	t.Run("metrics and timeout", func(t *testing.T) {
		m, err := c.Metrics(ctx)
		if err != nil || m.MemoryTotalBytes == 0 {
			t.Fatalf("metrics: %+v, %v", m, err)
		}
		info, err := c.SetTimeout(ctx, time.Hour)
		if err != nil || info.ExpiresAt == nil || time.Until(*info.ExpiresAt) < 50*time.Minute {
			t.Fatalf("set timeout: %+v, %v", info, err)
		}
	})

	final, err := c.Kill(ctx)
	if err != nil || final.Status != nestbox.StatusStopped {
		t.Fatalf("kill: %+v, %v", final, err)
	}
	if _, err := c.Exec(ctx, []string{"true"}); !errors.Is(err, nestbox.ErrConflict) {
		t.Fatalf("exec in a destroyed capsule: %v, want a conflict", err)
	}
}

func hasProcess(ps []nestbox.Process, pid uint32, tag string) bool {
	for _, p := range ps {
		if p.Pid == pid && (tag == "" || p.Tag == tag) {
			return true
		}
	}
	return false
}

// readUntil reads r until its output contains want, or fails the test
// after a generous time.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var out syncBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for !strings.Contains(out.String(), want) {
			n, err := r.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("no %q in the output after 30 s; got %q", want, out.String())
	}
	return out.String()
}
