package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	"nestbox.dev"
	"nestbox.dev/internal/capsulestate"
	"nestbox.dev/internal/proto/agentpb"
)

// fleetReplica is a `nestbox server` of a test's fleet, run in this
// process.
type fleetReplica struct {
	addr   string
	dir    string
	out    syncBuffer
	client *nestbox.Client
}

// startFleetReplicas starts n `nestbox server` replicas listening on
// listenHost, on dbURL and redisURL with the extra flags, and returns them with a client each (the
// first replica bootstraps the admin, whose key they all use). They stop
// at the end of the test, which fails if one ends in error.
func startFleetReplicas(t testing.TB, ctx context.Context, n int, listenHost, dbURL, redisURL string, extra ...string) []*fleetReplica {
	t.Helper()
	var key string
	rs := make([]*fleetReplica, n)
	for i := range rs {
		r := &fleetReplica{addr: net.JoinHostPort(listenHost, strconv.Itoa(freePort(t))), dir: t.TempDir()}
		rs[i] = r
		cpCtx, cpCancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		args := append([]string{"--data-dir", r.dir, "--listen", r.addr, "--database-url", dbURL, "--redis-url", redisURL, "--log-level", "warn"}, extra...)
		go func() { done <- runServer(cpCtx, args, &r.out, &r.out) }()
		t.Cleanup(func() {
			cpCancel()
			if err := <-done; err != nil {
				t.Errorf("nestbox server %d: %v\n%s", i, err, r.out.String())
			}
		})
		waitHTTP(t, "http://"+r.addr+"/health")
		if i == 0 {
			var err error
			if _, key, err = nestbox.LoadCredentials(r.dir); err != nil {
				t.Fatal(err)
			}
		}
		c, err := nestbox.New(nestbox.Config{URL: "http://" + r.addr, APIKey: key})
		if err != nil {
			t.Fatal(err)
		}
		r.client = c
	}
	return rs
}

// replicaLogs is every replica's output, for a failure message.
func replicaLogs(rs []*fleetReplica) string {
	var b strings.Builder
	for i, r := range rs {
		fmt.Fprintf(&b, "replica %d:\n%s\n", i, r.out.String())
	}
	return b.String()
}

// joinFile writes a join token for uses hosts, made through c, to a file.
func joinFile(t testing.TB, ctx context.Context, c *nestbox.Client, uses int) string {
	t.Helper()
	tok, err := c.CreateJoinToken(ctx, nestbox.CreateJoinTokenRequest{Uses: uses, TTLSeconds: 600})
	if err != nil {
		t.Fatalf("create a join token: %v", err)
	}
	f := filepath.Join(t.TempDir(), "join-token")
	if err := os.WriteFile(f, []byte(tok.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// waitHosts waits until c lists one reachable host with capacity per
// agent and returns their IDs in the agents' order (matched by the URL
// each agent advertises, advertised[k] for agents[k]).
func waitHosts(t testing.TB, ctx context.Context, c *nestbox.Client, advertised []string) []string {
	t.Helper()
	ids := make([]string, len(advertised))
	waitFor(t, time.Minute, fmt.Sprintf("%d reachable hosts with capacity", len(advertised)), func() bool {
		hosts, err := c.Hosts(ctx)
		if err != nil || len(hosts) != len(advertised) {
			return false
		}
		for _, h := range hosts {
			if !h.Reachable || h.Capacity.MemoryTotalBytes == 0 {
				return false
			}
			if k := slices.Index(advertised, h.URL); k >= 0 {
				ids[k] = h.ID
			}
		}
		return !slices.Contains(ids, "")
	})
	return ids
}

// capsuleLoad runs creates, execs and destroys through a fleet's replicas
// until stopped, and remembers every capsule the API said it created.
type capsuleLoad struct {
	clients []*nestbox.Client
	stop    context.CancelFunc
	wg      sync.WaitGroup

	// mu guards the fields below.
	mu      sync.Mutex
	created []string
	ok      int // rounds that ran from create to destroy
	errs    []string
	// internal are the errors that were the platform's own fault (a 5xx
	// other than 503): an outage of a backend must be 503, retried.
	internal []string
}

// startLoad starts workers that each, in a loop, create a capsule through
// one replica (answered at once), wait for it through another, exec in it
// and destroy it. Errors are expected while a backend is down: they are
// counted, and the worker goes on.
func startLoad(ctx context.Context, clients []*nestbox.Client, workers int) *capsuleLoad {
	ctx, stop := context.WithCancel(ctx)
	l := &capsuleLoad{clients: clients, stop: stop}
	for w := range workers {
		l.wg.Go(func() {
			for i := w; ctx.Err() == nil; i++ {
				l.round(ctx, i)
			}
		})
	}
	return l
}

func (l *capsuleLoad) round(ctx context.Context, i int) {
	n := len(l.clients)
	via := func(k int) *nestbox.Client { return l.clients[(i+k)%n] }
	fail := func(what string, err error) {
		if ctx.Err() != nil {
			return
		}
		line := fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), what, err)
		var apiErr *nestbox.APIError
		l.mu.Lock()
		l.errs = append(l.errs, line)
		if errors.As(err, &apiErr) && apiErr.StatusCode >= 500 && apiErr.StatusCode != http.StatusServiceUnavailable {
			l.internal = append(l.internal, line)
		}
		l.mu.Unlock()
		select { // a backend is down: do not spin
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	h, err := via(0).Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", Metadata: map[string]string{"load": "yes"}}, nestbox.NoWait())
	if err != nil {
		fail("create", err)
		return
	}
	l.mu.Lock()
	l.created = append(l.created, h.ID())
	l.mu.Unlock()
	// Each step is retried while the test runs: a step that failed while a
	// backend was down works once it is back.
	h = via(1).Capsule(h.ID())
	for {
		c, err := h.Wait(ctx, nestbox.StatusRunning)
		if err == nil {
			break
		}
		if c.Status.Final() || ctx.Err() != nil {
			fail("wait for "+h.ID(), err)
			return
		}
		fail("wait for "+h.ID(), err)
	}
	for {
		res, err := via(2).Capsule(h.ID()).Exec(ctx, []string{"echo", h.ID()})
		if err == nil && res.Stdout == h.ID()+"\n" {
			break
		}
		if ctx.Err() != nil {
			return
		}
		fail("exec in "+h.ID(), fmt.Errorf("%+v, %v", res, err))
	}
	for {
		_, err := via(3).Capsule(h.ID()).Kill(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		fail("kill "+h.ID(), err)
	}
	l.mu.Lock()
	l.ok++
	l.mu.Unlock()
}

// rounds returns how many rounds completed so far.
func (l *capsuleLoad) rounds() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok
}

// loadResult is what a capsuleLoad did.
type loadResult struct {
	created []string // every capsule the API said it created
	rounds  int      // rounds from create to destroy
	errs    []string // every error, with its time
	// internal are the errors that were 5xx other than 503.
	internal []string
}

// end stops the workers (a round in flight is left where it is: its
// capsule may be starting, running or stopping) and returns what they
// did.
func (l *capsuleLoad) end() loadResult {
	l.stop()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return loadResult{slices.Clone(l.created), l.ok, slices.Clone(l.errs), slices.Clone(l.internal)}
}

// fleetAgent is an agent of a fleet test with the host ID it was given.
type fleetAgent struct {
	hostID string
	proc   *agentProcess
}

// checkConsistent compares the database with what the agents run, and
// returns what is wrong (nil: nothing):
//   - every capsule in created has a row (none lost);
//   - no capsule is in a transient status or missing;
//   - a running or paused capsule's sandbox is on its host in that state;
//   - a stopped or error capsule has no sandbox anywhere;
//   - every sandbox an agent holds is a live capsule's of that host.
func checkConsistent(ctx context.Context, dbURL string, created []string, agents []fleetAgent) []string {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return []string{"connect to the database: " + err.Error()}
	}
	defer conn.Close(ctx)
	type row struct {
		status nestbox.Status
		host   string
	}
	rows := map[string]row{}
	res, err := conn.Query(ctx, "SELECT id, status, host_id FROM capsules")
	if err != nil {
		return []string{"read capsules: " + err.Error()}
	}
	for res.Next() {
		var id, status, host string
		if err := res.Scan(&id, &status, &host); err != nil {
			return []string{"read capsules: " + err.Error()}
		}
		rows[id] = row{nestbox.Status(status), host}
	}
	if err := res.Err(); err != nil {
		return []string{"read capsules: " + err.Error()}
	}
	onHost := map[string]map[string]agentpb.SandboxState{}
	for _, a := range agents {
		resp, err := a.proc.client.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{}))
		if err != nil {
			return []string{fmt.Sprintf("list the sandboxes of host %s: %v", a.hostID, err)}
		}
		m := map[string]agentpb.SandboxState{}
		for _, sb := range resp.Msg.GetSandboxes() {
			m[sb.GetId()] = sb.GetState()
		}
		onHost[a.hostID] = m
	}
	var wrong []string
	for _, id := range created {
		if _, ok := rows[id]; !ok {
			wrong = append(wrong, fmt.Sprintf("capsule %s was created but has no row", id))
		}
	}
	for id, r := range rows {
		if capsulestate.Transient(r.status) || r.status == nestbox.StatusMissing {
			wrong = append(wrong, fmt.Sprintf("capsule %s is %s", id, r.status))
			continue
		}
		want := map[nestbox.Status]agentpb.SandboxState{nestbox.StatusRunning: agentpb.SandboxState_SANDBOX_STATE_RUNNING, nestbox.StatusPaused: agentpb.SandboxState_SANDBOX_STATE_PAUSED}[r.status]
		for host, m := range onHost {
			st, ok := m[id]
			switch {
			case host == r.host && want != 0 && (!ok || st != want):
				wrong = append(wrong, fmt.Sprintf("capsule %s is %s, but its host %s has it as %v (present %v)", id, r.status, host, st, ok))
			case ok && (host != r.host || want == 0):
				wrong = append(wrong, fmt.Sprintf("capsule %s is %s on host %s, but host %s holds a sandbox of it (%v)", id, r.status, r.host, host, st))
			}
		}
	}
	for host, m := range onHost {
		for id := range m {
			if _, ok := rows[id]; !ok {
				wrong = append(wrong, fmt.Sprintf("host %s holds sandbox %s, which no capsule is", host, id))
			}
		}
	}
	slices.Sort(wrong)
	return wrong
}

// waitConsistent waits until checkConsistent finds nothing wrong, and
// fails the test with what is still wrong after d.
func waitConsistent(t *testing.T, ctx context.Context, d time.Duration, dbURL string, created []string, agents []fleetAgent, logs func() string) {
	t.Helper()
	start := time.Now()
	var wrong []string
	for deadline := time.Now().Add(d); ; time.Sleep(500 * time.Millisecond) {
		first := wrong == nil
		if wrong = checkConsistent(ctx, dbURL, created, agents); len(wrong) == 0 {
			t.Logf("the store and the hosts agree on %d capsules %s after the load stopped", len(created), time.Since(start).Round(100*time.Millisecond))
			return
		}
		if first {
			t.Logf("right after the load, the store and the hosts disagree (the reconcile has work):\n%s", strings.Join(wrong, "\n"))
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Fatalf("after %s the store and the hosts still disagree:\n%s\n%s", d, strings.Join(wrong, "\n"), logs())
}
