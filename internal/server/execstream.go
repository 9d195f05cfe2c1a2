package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/coder/websocket"

	"nestbox.dev"
	"nestbox.dev/internal/envdclient"
	"nestbox.dev/internal/errdefs"
)

// execStream serves GET /v1/capsules/{id}/exec/stream: a WebSocket that
// carries one process's life as StreamMessages. A new process is described
// by the client's first message (an ExecRequest); ?pid= or ?tag= reattach
// to a running one instead. The client may send stdin, close_stdin and
// signal messages. Leaving the stream does not kill the process.
func (s *Server) execStream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var pid uint64
	if v := q.Get("pid"); v != "" {
		var err error
		if pid, err = strconv.ParseUint(v, 10, 32); err != nil || pid == 0 {
			s.writeError(w, r, errdefs.Invalid("pid %q: want a process ID", v))
			return
		}
	}
	tag := q.Get("tag")
	s.serveStream(w, r, streamHandlers{
		open: func(ctx context.Context, conn *websocket.Conn, cl *envdclient.Client) (*envdclient.Stream, error) {
			switch {
			case pid != 0:
				return cl.ConnectPid(ctx, uint32(pid))
			case tag != "":
				return cl.ConnectTag(ctx, tag)
			}
			req, err := readExecRequest(ctx, conn)
			if err != nil {
				return nil, err
			}
			return cl.Start(ctx, req)
		},
		deliver: writeMsg,
		input:   execInput,
	})
}

// readExecRequest reads and checks the first message of a new exec stream.
func readExecRequest(ctx context.Context, conn *websocket.Conn) (nestbox.ExecRequest, error) {
	var req nestbox.ExecRequest
	rctx, cancel := context.WithTimeout(ctx, wsStartWithin)
	defer cancel()
	typ, b, err := conn.Read(rctx)
	if err != nil {
		return req, errdefs.Invalid("no exec request: %v", err)
	}
	if typ != websocket.MessageText {
		return req, errdefs.Invalid("the first message must be a JSON exec request")
	}
	if err := json.Unmarshal(b, &req); err != nil {
		return req, errdefs.Invalid("exec request: %v", err)
	}
	return req, checkExec(req)
}

// execInput forwards the client's messages to process pid until the
// stream ends or the client goes away.
func execInput(ctx context.Context, conn *websocket.Conn, cl *envdclient.Client, pid uint32) {
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var m nestbox.StreamMessage
		if typ != websocket.MessageText || json.Unmarshal(b, &m) != nil {
			failWS(ctx, conn, errdefs.Invalid("client messages must be JSON stream messages"))
			return
		}
		switch m.Type {
		case "stdin":
			err = cl.SendStdin(ctx, pid, m.Data)
		case "close_stdin":
			err = cl.CloseStdin(ctx, pid)
		case "signal":
			if m.Signal != "SIGTERM" && m.Signal != "SIGKILL" {
				err = errdefs.Invalid("signal %q: want SIGTERM or SIGKILL", m.Signal)
				break
			}
			err = cl.Signal(ctx, pid, m.Signal)
		default:
			err = errdefs.Invalid("unknown message type %q", m.Type)
		}
		if err != nil && ctx.Err() == nil {
			reject(ctx, conn, err)
		}
	}
}
