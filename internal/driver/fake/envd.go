package fake

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"nestbox.dev/internal/envd"
	"nestbox.dev/internal/envd/settings"
)

// envdServer is one fake sandbox's envd: the real server of package envd
// in dev mode, serving in this process until stop.
//
// envd's process service reaps with wait4(-1) and expects to be alone in
// its OS process; the agent's tests start no processes through these
// envds, and whatever else forks in the test process has to tolerate a
// lost exit status.
type envdServer struct {
	addr   netip.AddrPort
	srv    *envd.Server
	ln     *freezeListener
	cancel context.CancelFunc
	served chan error
}

// envdState is what a checkpoint keeps of envd's memory: the settings
// /init gave it.
type envdState struct {
	EnvVars        map[string]string `json:"env_vars,omitempty"`
	AccessToken    string            `json:"access_token,omitempty"`
	DefaultUser    string            `json:"default_user,omitempty"`
	DefaultWorkdir string            `json:"default_workdir,omitempty"`
}

// startEnvd serves a new envd on addr (port 0: a free one), with the
// settings of saved if not nil; workdir, if set, is where processes start
// by default.
func startEnvd(addr netip.AddrPort, workdir string, saved *envdState, log *slog.Logger) (*envdServer, error) {
	// The listener first: a busy address fails before envd's services
	// start, which only Serve stops again.
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("envd: %w", err)
	}
	bound := ln.Addr().(*net.TCPAddr).AddrPort()
	bound = netip.AddrPortFrom(bound.Addr().Unmap(), bound.Port())
	srv, err := envd.New(envd.Config{Dev: true, Port: int(bound.Port()), DefaultWorkdir: workdir, Logger: log})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("envd: %w", err)
	}
	if saved != nil {
		tok := saved.AccessToken
		srv.Settings().Apply(settings.Update{EnvVars: saved.EnvVars, AccessToken: &tok,
			DefaultUser: saved.DefaultUser, DefaultWorkdir: saved.DefaultWorkdir})
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &envdServer{
		addr:   bound,
		srv:    srv,
		ln:     newFreezeListener(ln),
		cancel: cancel,
		served: make(chan error, 1),
	}
	go func() { e.served <- srv.Serve(ctx, e.ln) }()
	return e, nil
}

// state returns envd's settings; nil for no envd.
func (e *envdServer) state() *envdState {
	if e == nil {
		return nil
	}
	s := e.srv.Settings()
	return &envdState{EnvVars: s.EnvVars(), AccessToken: s.AccessToken(), DefaultUser: s.DefaultUser(), DefaultWorkdir: s.DefaultWorkdir()}
}

// stop shuts envd down and waits until it has closed its services. A nil
// envdServer is none: nothing to stop.
func (e *envdServer) stop() {
	if e == nil {
		return
	}
	e.cancel()
	<-e.served
}

// freezeListener holds connections unaccepted while frozen, as a paused
// sandbox's netstack leaves them unanswered; they are served once thawed.
type freezeListener struct {
	net.Listener
	closeOnce sync.Once
	closed    chan struct{}

	// mu guards frozen and thawed.
	mu     sync.Mutex
	frozen bool
	thawed chan struct{} // closed by thaw
}

func newFreezeListener(ln net.Listener) *freezeListener {
	return &freezeListener{Listener: ln, closed: make(chan struct{})}
}

func (l *freezeListener) freeze() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.frozen {
		l.frozen, l.thawed = true, make(chan struct{})
	}
}

func (l *freezeListener) thaw() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.frozen {
		l.frozen = false
		close(l.thawed)
	}
}

// Accept returns the next connection once the listener is not frozen.
func (l *freezeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		l.mu.Lock()
		frozen, thawed := l.frozen, l.thawed
		l.mu.Unlock()
		if !frozen {
			return c, nil
		}
		select {
		case <-thawed:
		case <-l.closed:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// Close closes the listener and ends an Accept that waits for a thaw.
func (l *freezeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}
