// Package portfwd makes services inside a sandbox that listen only on
// loopback reachable from outside it: it scans the sandbox's listening TCP
// sockets and, for each port bound to 127.0.0.1 or ::1 alone, listens on the
// same port of the sandbox's external addresses and relays connections to
// the loopback service. Imported by envd's server only.
package portfwd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// Config configures a Forwarder. Zero values mean the documented defaults.
type Config struct {
	// Interval between scans while the sandbox is in use (a Kick within
	// the last few intervals); zero means one second.
	Interval time.Duration
	// MaxInterval is what the interval grows to, doubling after each
	// scan, while nothing kicks: an idle sandbox's scans cost a few
	// syscalls into the sandbox's kernel each, which add up over a host
	// of idle sandboxes. Zero means 16 s; it is never below Interval.
	MaxInterval time.Duration
	// ProcNet is the directory holding tcp and tcp6; "" means /proc/net.
	ProcNet string
	// Addrs lists the external addresses to listen on; nil means every
	// non-loopback IPv4 address of the sandbox's interfaces.
	Addrs func() ([]net.IP, error)
	// Exclude lists ports never forwarded (envd's own port).
	Exclude []uint16
	Logger  *slog.Logger
}

// Forwarder owns the relays it starts. Run it once; Reset may be called from
// any goroutine.
type Forwarder struct {
	cfg     Config
	log     *slog.Logger
	exclude map[uint16]bool

	// kick wakes Run's schedule (Kick).
	kick chan struct{}
	// waits, if not nil, gets each wait Run's schedule chooses: after a
	// scan, and after a kick that shortened it (tests).
	waits chan time.Duration

	// mu guards relays.
	mu     sync.Mutex
	relays map[uint16]*relay
}

// New returns a Forwarder; it does nothing until Run.
func New(cfg Config) *Forwarder {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxInterval <= 0 {
		cfg.MaxInterval = 16 * time.Second
	}
	cfg.MaxInterval = max(cfg.MaxInterval, cfg.Interval)
	if cfg.ProcNet == "" {
		cfg.ProcNet = "/proc/net"
	}
	if cfg.Addrs == nil {
		cfg.Addrs = externalAddrs
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ex := map[uint16]bool{}
	for _, p := range cfg.Exclude {
		ex[p] = true
	}
	return &Forwarder{cfg: cfg, log: log, exclude: ex, relays: map[uint16]*relay{}, kick: make(chan struct{}, 1)}
}

// Run scans until ctx is done, then closes every relay and returns nil.
// It scans at once, then at Interval, the interval doubling after each
// scan up to MaxInterval; a Kick brings it back to Interval.
func (f *Forwarder) Run(ctx context.Context) error {
	defer f.closeAll()
	f.scan()
	wait := f.cfg.Interval
	next := time.Now().Add(wait)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.kick:
			// In use again: scan within an interval, and often after
			// that (a server started now binds its port soon). A scan
			// due sooner stays due.
			wait = f.cfg.Interval
			if time.Until(next) > wait {
				next = time.Now().Add(wait)
				t.Reset(wait)
				f.chose(wait)
			}
			continue
		case <-t.C:
		}
		f.scan()
		wait = nextWait(wait, f.cfg.MaxInterval)
		next = time.Now().Add(wait)
		t.Reset(wait)
		f.chose(wait)
	}
}

// chose reports a wait of the schedule to a test.
func (f *Forwarder) chose(d time.Duration) {
	if f.waits != nil {
		f.waits <- d
	}
}

// nextWait is the interval after a scan that came after wait: twice it,
// up to most.
func nextWait(wait, most time.Duration) time.Duration { return min(2*wait, most) }

// Kick tells the forwarder that the sandbox is in use (envd served a
// request: a process may be about to listen): it scans at Interval again.
// Safe from any goroutine; it never blocks.
func (f *Forwarder) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Reset closes every relay; the next scan opens them again. envd calls it
// after a snapshot restore, when the sandbox's addresses may have changed
// and relayed connections are dead.
func (f *Forwarder) Reset() {
	f.closeAll()
	f.scan()
}

// Forwarded returns the ports currently relayed.
func (f *Forwarder) Forwarded() []uint16 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]uint16, 0, len(f.relays))
	for p := range f.relays {
		out = append(out, p)
	}
	return out
}

func (f *Forwarder) closeAll() {
	f.mu.Lock()
	relays := f.relays
	f.relays = map[uint16]*relay{}
	f.mu.Unlock()
	for _, r := range relays {
		r.close()
	}
}

func (f *Forwarder) scan() {
	socks, err := listeners(f.cfg.ProcNet)
	if err != nil {
		f.log.Warn("scan listening sockets", "err", err)
		return
	}
	addrs, err := f.cfg.Addrs()
	if err != nil {
		f.log.Warn("list external addresses", "err", err)
		return
	}
	// A port needs a relay when something listens on loopback only: a
	// wildcard or external listener is reachable already (and our own relay
	// listeners show up as external ones, so they are not counted).
	loopback := map[uint16]net.IP{}
	reachable := map[uint16]bool{}
	f.mu.Lock()
	defer f.mu.Unlock()
	ours := map[string]bool{}
	for _, a := range addrs {
		ours[a.String()] = true
	}
	for _, s := range socks {
		switch {
		case ours[s.ip.String()]:
			// One of our relays (or a service bound to the external
			// address itself): reachable either way.
			reachable[s.port] = reachable[s.port] || f.relays[s.port] == nil
		case s.ip.IsLoopback():
			loopback[s.port] = s.ip
		case s.ip.IsUnspecified():
			reachable[s.port] = true
		}
	}
	for port, r := range f.relays {
		if _, ok := loopback[port]; !ok || reachable[port] {
			r.close()
			delete(f.relays, port)
		}
	}
	for port, ip := range loopback {
		if reachable[port] || f.exclude[port] || f.relays[port] != nil {
			continue
		}
		r, err := startRelay(port, ip, addrs, f.log)
		if err != nil {
			f.log.Debug("forward port", "port", port, "err", err)
			continue
		}
		f.log.Info("forwarding loopback port", "port", port)
		f.relays[port] = r
	}
}

// relay accepts on the external addresses of one port and copies each
// connection to the loopback service.
type relay struct {
	target string
	lns    []net.Listener
	log    *slog.Logger
	wg     sync.WaitGroup

	// mu guards conns and closed.
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startRelay(port uint16, target net.IP, addrs []net.IP, log *slog.Logger) (*relay, error) {
	r := &relay{target: net.JoinHostPort(target.String(), strconv.Itoa(int(port))), log: log, conns: map[net.Conn]struct{}{}}
	for _, a := range addrs {
		ln, err := net.Listen("tcp", net.JoinHostPort(a.String(), strconv.Itoa(int(port))))
		if err != nil {
			r.close()
			return nil, err
		}
		r.lns = append(r.lns, ln)
	}
	if len(r.lns) == 0 {
		return nil, errors.New("no external address to listen on")
	}
	for _, ln := range r.lns {
		r.wg.Add(1)
		go r.accept(ln)
	}
	return r, nil
}

func (r *relay) accept(ln net.Listener) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !r.track(c, true) {
			c.Close()
			return
		}
		r.wg.Add(1)
		go r.pipe(c)
	}
}

func (r *relay) pipe(c net.Conn) {
	defer r.wg.Done()
	defer r.track(c, false)
	defer c.Close()
	up, err := net.DialTimeout("tcp", r.target, 5*time.Second)
	if err != nil {
		r.log.Debug("dial forwarded port", "target", r.target, "err", err)
		return
	}
	if !r.track(up, true) {
		up.Close()
		return
	}
	defer r.track(up, false)
	defer up.Close()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		// Half-close so the peer sees EOF but can still answer.
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
}

// track adds (or removes) a connection; it reports false when the relay is
// closed and the connection must not be used.
func (r *relay) track(c net.Conn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !add {
		delete(r.conns, c)
		return true
	}
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) close() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	for _, ln := range r.lns {
		ln.Close()
	}
	r.wg.Wait()
}

// externalAddrs are the sandbox's IPv4 addresses other than loopback,
// link-local ones included: the host agent gives every guest 169.254.0.21
// (the shared guest address, as E2B's guests have).
func externalAddrs() ([]net.IP, error) {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []net.IP
	for _, a := range ifaddrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.To4() == nil {
			continue
		}
		out = append(out, n.IP)
	}
	return out, nil
}
