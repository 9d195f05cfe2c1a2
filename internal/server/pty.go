package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"nestbox.dev"
	"nestbox.dev/internal/envdclient"
	"nestbox.dev/internal/errdefs"
)

// Terminal size bounds.
const maxTermDim = 1000

// pty serves GET /v1/capsules/{id}/pty: an interactive terminal over a
// WebSocket. Binary frames carry the terminal's bytes both ways; text
// frames carry StreamMessages ("started" and "exit" from the server,
// "resize" from the client). With ?tag= a terminal of that tag that still
// runs is reattached, else a new one gets the tag; leaving the stream does
// not end the terminal's process.
func (s *Server) pty(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cols, err1 := termDim(q.Get("cols"), 80)
	rows, err2 := termDim(q.Get("rows"), 24)
	if err := errors.Join(err1, err2); err != nil {
		s.writeError(w, r, err)
		return
	}
	req := envdclient.PTYRequest{Cols: cols, Rows: rows, Tag: q.Get("tag"), User: q.Get("user"), Cwd: q.Get("cwd")}
	if c := q.Get("cmd"); c != "" {
		req.Cmd = []string{"/bin/bash", "-l", "-c", c}
	}
	reattached := false
	s.serveStream(w, r, streamHandlers{
		open: func(ctx context.Context, _ *websocket.Conn, cl *envdclient.Client) (st *envdclient.Stream, err error) {
			st, reattached, err = openPTY(ctx, cl, req)
			return st, err
		},
		started: func(ctx context.Context, cl *envdclient.Client, pid uint32) {
			if reattached {
				// The terminal keeps the size of its last client until
				// told otherwise; a failure shows as a wrong size only.
				cl.ResizePTY(ctx, pid, req.Cols, req.Rows)
			}
		},
		deliver: func(ctx context.Context, conn *websocket.Conn, m nestbox.StreamMessage) error {
			switch m.Type {
			case "stdout", "stderr":
				return conn.Write(ctx, websocket.MessageBinary, m.Data)
			case "started", "exit":
				return writeMsg(ctx, conn, m)
			}
			return nil
		},
		input: ptyInput,
	})
}

// openPTY reattaches to the terminal tagged req.Tag if it runs, else starts
// a new one.
func openPTY(ctx context.Context, cl *envdclient.Client, req envdclient.PTYRequest) (*envdclient.Stream, bool, error) {
	if req.Tag != "" {
		st, err := cl.ConnectTag(ctx, req.Tag)
		if err == nil {
			return st, true, nil
		}
		if !errors.Is(err, errdefs.ErrNotFound) {
			return nil, false, err
		}
	}
	st, err := cl.StartPTY(ctx, req)
	return st, false, err
}

// ptyInput forwards keystrokes and resizes to terminal pid until the
// client goes away.
func ptyInput(ctx context.Context, conn *websocket.Conn, cl *envdclient.Client, pid uint32) {
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if typ == websocket.MessageBinary {
			err = cl.SendPTYInput(ctx, pid, b)
		} else {
			var m nestbox.StreamMessage
			switch {
			case json.Unmarshal(b, &m) != nil:
				err = errdefs.Invalid("text frames must be JSON stream messages")
			case m.Type != "resize":
				err = errdefs.Invalid("unknown message type %q", m.Type)
			case m.Cols < 1 || m.Rows < 1 || m.Cols > maxTermDim || m.Rows > maxTermDim:
				err = errdefs.Invalid("resize to %dx%d: want 1 to %d", m.Cols, m.Rows, maxTermDim)
			default:
				err = cl.ResizePTY(ctx, pid, m.Cols, m.Rows)
			}
		}
		if err != nil && ctx.Err() == nil {
			reject(ctx, conn, err)
		}
	}
}

func termDim(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 || n > maxTermDim {
		return 0, errdefs.Invalid("terminal size %q: want 1 to %d", v, maxTermDim)
	}
	return n, nil
}
