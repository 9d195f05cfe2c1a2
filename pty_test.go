package nestbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"nestbox.dev"
)

// fakePTY is the server side of the PTY WebSocket: a pretend shell that
// echoes keystrokes, reports resizes as output and exits with 7 on "exit\r".
func fakePTY(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/v1/capsules/cap1/pty" {
			writeError(w, http.StatusNotFound, "not_found", r.URL.Path)
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer conn.CloseNow()
		ctx := r.Context()
		sendText := func(m nestbox.StreamMessage) {
			b, _ := json.Marshal(m)
			_ = conn.Write(ctx, websocket.MessageText, b)
		}
		sendText(nestbox.StreamMessage{Type: "started", Pid: 5, Tag: q.Get("tag")})
		greeting := fmt.Sprintf("%sx%s user=%s cwd=%s cmd=%s\r\n$ ", q.Get("cols"), q.Get("rows"), q.Get("user"), q.Get("cwd"), q.Get("cmd"))
		_ = conn.Write(ctx, websocket.MessageBinary, []byte(greeting))
		var line strings.Builder
		for {
			typ, b, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if typ == websocket.MessageText {
				var m nestbox.StreamMessage
				if err := json.Unmarshal(b, &m); err != nil || m.Type != "resize" {
					t.Errorf("control message %q: %v", b, err)
					return
				}
				_ = conn.Write(ctx, websocket.MessageBinary, fmt.Appendf(nil, "[resized %dx%d]", m.Cols, m.Rows))
				continue
			}
			_ = conn.Write(ctx, websocket.MessageBinary, b) // echo
			line.Write(b)
			if strings.HasSuffix(line.String(), "exit\r") {
				sendText(nestbox.StreamMessage{Type: "exit", ExitCode: 7})
				conn.Close(websocket.StatusNormalClosure, "")
				return
			}
		}
	})
}

func TestPTY(t *testing.T) {
	c := newTestClient(t, fakePTY(t))
	ctx := context.Background()
	term, err := c.Capsule("cap1").PTY(ctx, nestbox.PTYOptions{Tag: "main", User: "root", Cwd: "/tmp", Cmd: "bash -l"})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	var _ io.ReadWriteCloser = term
	if term.Pid() != 5 || term.Tag() != "main" {
		t.Errorf("pid %d tag %q", term.Pid(), term.Tag())
	}
	if err := term.Resize(ctx, 120, 40); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Write([]byte("ls\r")); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Write([]byte("\x03exit\r")); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(term)
	if err != nil {
		t.Fatal(err)
	}
	want := "80x24 user=root cwd=/tmp cmd=bash -l\r\n$ [resized 120x40]ls\r\x03exit\r"
	if string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if code, err := term.Wait(); code != 7 || err != nil {
		t.Errorf("Wait = %d, %v; want 7, nil", code, err)
	}
	if err := term.Resize(ctx, 0, 10); err == nil {
		t.Error("Resize(0, 10) succeeded")
	}
}
