package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"

	"nestbox.dev"
	"nestbox.dev/internal/envdclient"
	"nestbox.dev/internal/errdefs"
)

// WebSocket settings of the exec and PTY streams.
const (
	wsPingEvery   = 30 * time.Second
	wsReadLimit   = 1 << 20
	wsStartWithin = 30 * time.Second // for the first message of an exec stream
)

// checkOrigin refuses a WebSocket opened by a browser page of another
// origin than the API's own (Config.PublicURL's, or without one the
// request's Host). API keys, not cookies, authenticate these streams, so
// such a page would need the key anyway; the check keeps it that way
// should a cookie ever authenticate. Clients other than browsers send no
// Origin and pass.
func (s *Server) checkOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Scheme == "" {
		return errdefs.Permission("Origin %q: not this API's origin", o)
	}
	if s.publicOrigin != "" {
		if strings.ToLower(u.Scheme+"://"+u.Host) != s.publicOrigin {
			return errdefs.Permission("Origin %q: not this API's origin (%s)", o, s.publicOrigin)
		}
		return nil
	}
	if !strings.EqualFold(u.Host, r.Host) {
		return errdefs.Permission("Origin %q: not this API's origin", o)
	}
	return nil
}

// acceptWS upgrades r, whose Origin checkOrigin has accepted.
func acceptWS(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(wsReadLimit)
	return conn, nil
}

// keepAlive pings conn every wsPingEvery until ctx is done, so that idle
// terminals survive proxies and load balancers that drop quiet
// connections, and dead peers are noticed.
func keepAlive(ctx context.Context, conn *websocket.Conn) {
	t := time.NewTicker(wsPingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, wsPingEvery)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// writeMsg sends a StreamMessage as a JSON text frame.
func writeMsg(ctx context.Context, conn *websocket.Conn, m nestbox.StreamMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageText, b)
}

// failWS reports err on the stream and closes it.
func failWS(ctx context.Context, conn *websocket.Conn, err error) {
	writeMsg(ctx, conn, nestbox.StreamMessage{Type: "error", Code: errdefs.Code(err), Error: err.Error()})
	conn.Close(websocket.StatusNormalClosure, "")
}

// reject tells the client that one of its messages was refused; the
// stream goes on.
func reject(ctx context.Context, conn *websocket.Conn, err error) {
	writeMsg(ctx, conn, nestbox.StreamMessage{Type: "rejected", Code: errdefs.Code(err), Error: err.Error()})
}

// isClosed reports whether err is the peer closing or going away.
func isClosed(err error) bool {
	var ce websocket.CloseError
	return errors.As(err, &ce) || errors.Is(err, context.Canceled)
}

// streamHandlers are what an exec or PTY WebSocket does differently.
type streamHandlers struct {
	// open starts or reattaches to the process; it may read the client's
	// first message.
	open func(ctx context.Context, conn *websocket.Conn, cl *envdclient.Client) (*envdclient.Stream, error)
	// started, if set, runs when the process's "started" message arrives.
	started func(ctx context.Context, cl *envdclient.Client, pid uint32)
	// deliver sends one message of the process to the client.
	deliver func(ctx context.Context, conn *websocket.Conn, m nestbox.StreamMessage) error
	// input forwards the client's messages to process pid until the
	// client goes away or ctx ends.
	input func(ctx context.Context, conn *websocket.Conn, cl *envdclient.Client, pid uint32)
}

// serveStream runs one process stream over a WebSocket: it resolves the
// capsule (errors before the upgrade are JSON answers), upgrades, opens
// the process, pings, and pumps its messages to the client until the exit,
// while a second goroutine forwards the client's input. The stream's
// context is not the request's: the hijacked connection outlives it.
// Leaving the stream never ends the process.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, h streamHandlers) {
	if err := s.checkOrigin(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	cl, err := s.capsuleEnvd(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	conn, err := acceptWS(w, r)
	if err != nil {
		return // Accept answered the client
	}
	defer conn.CloseNow()
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	// A destroy seen by this control plane (its own, another's through
	// the event stream, the reconciler's) cuts the stream: the agent's
	// end of it may never close once the sandbox's network is gone.
	defer context.AfterFunc(s.proxy.alive(r.PathValue("id")), cancel)()

	st, err := h.open(ctx, conn, cl)
	if err != nil {
		failWS(ctx, conn, err)
		return
	}
	defer st.Close()
	go keepAlive(ctx, conn)
	started := make(chan uint32, 1)
	go func() {
		defer cancel() // the client went away: stop following
		select {
		case pid := <-started:
			h.input(ctx, conn, cl, pid)
		case <-ctx.Done():
		}
	}()
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			conn.Close(websocket.StatusNormalClosure, "")
			return
		}
		if err != nil {
			failWS(ctx, conn, err)
			return
		}
		if m.Type == "started" {
			if h.started != nil {
				h.started(ctx, cl, m.Pid)
			}
			started <- m.Pid
		}
		if err := h.deliver(ctx, conn, m); err != nil {
			return // the client went away; the process keeps running
		}
		if m.Type == "exit" {
			conn.Close(websocket.StatusNormalClosure, "")
			return
		}
	}
}
