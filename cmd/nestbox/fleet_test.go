package main

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"

	"nestbox.dev"
	"nestbox.dev/internal/metrics/metricstest"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/testenv"
)

// postgresAdminURL is the private PostgreSQL scripts/test-services.sh
// starts (never a server the machine happens to run), where tests make
// their own databases; NESTBOX_TEST_POSTGRES_URL overrides it.
func postgresAdminURL() string {
	if u := os.Getenv("NESTBOX_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable"
}

func redisURL() string {
	if u := os.Getenv("NESTBOX_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:56379/0"
}

// freshDatabase creates an empty PostgreSQL database for the test and
// returns its URL; it is dropped at the end.
func freshDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, postgresAdminURL())
	if err != nil {
		testenv.Missing(t, "PostgreSQL is not reachable: "+err.Error())
	}
	name := "nbx_e2e_" + strings.ToLower(rand.Text()[:10])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close(context.Background())
	})
	u := postgresAdminURL()
	base, query, _ := strings.Cut(u, "?")
	base = base[:strings.LastIndex(base, "/")+1] + name
	if query != "" {
		base += "?" + query
	}
	return base
}

// TestServerWithPostgresAndRedis runs the control plane as `nestbox server`
// on PostgreSQL and Redis Streams, the fleet's backends, in front of a
// separate `nestbox agent` set up as README's split deployment is (one
// copied file, the agent token): the lifecycle works through them, the
// database holds the capsule's history, and the agent's own events (an
// automatic pause) are accepted.
func TestServerWithPostgresAndRedis(t *testing.T) {
	b := requirePlatform(t)
	bin := buildNestbox(t)
	dbURL := freshDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cpDir := t.TempDir()
	cpAddr, metricsAddr := freeAddr(t), freeAddr(t)
	// No events token: the agent derives it from its own token, the
	// server from its copy of that token.
	agent := startAgentProcess(t, b, bin, cpAddr, "", "nbg", "10.220.0.0/24", "/nestbox-e2e-fleet")

	var cpOut syncBuffer
	cpCtx, cpCancel := context.WithCancel(ctx)
	cpDone := make(chan error, 1)
	go func() {
		cpDone <- runServer(cpCtx, []string{"--data-dir", cpDir, "--listen", cpAddr, "--agent-url", "http://" + agent.addr, "--agent-token-file", agent.tokenFile,
			"--database-url", dbURL, "--redis-url", redisURL(), "--log-level", "warn", "--metrics-listen", metricsAddr}, &cpOut, &cpOut)
	}()
	defer func() {
		cpCancel()
		if err := <-cpDone; err != nil {
			t.Errorf("nestbox server: %v\n%s", err, cpOut.String())
		}
	}()
	waitHTTP(t, "http://"+cpAddr+"/health")
	url, key, err := nestbox.LoadCredentials(cpDir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := nestbox.New(nestbox.Config{URL: url, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}

	c, err := client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", Metadata: map[string]string{"backend": "postgres"}})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, cpOut.String())
	}
	res, err := c.Exec(ctx, []string{"echo", "on postgres"})
	if err != nil || res.Stdout != "on postgres\n" {
		t.Fatalf("exec: %+v, %v", res, err)
	}
	list, err := client.List(ctx, nestbox.ListOptions{Metadata: map[string]string{"backend": "postgres"}})
	if err != nil || len(list.Capsules) != 1 || list.Capsules[0].ID != c.ID() {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if final, err := c.Kill(ctx); err != nil || final.Status != nestbox.StatusStopped {
		t.Fatalf("kill: %+v, %v", final, err)
	}
	agentToken, err := os.ReadFile(agent.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	checkScrapes(t, "http://"+metricsAddr, "http://"+agent.addr, strings.TrimSpace(string(agentToken)))

	// The history is in PostgreSQL.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var status string
	var events int
	if err := conn.QueryRow(ctx, "SELECT status FROM capsules WHERE id = $1", c.ID()).Scan(&status); err != nil || status != "stopped" {
		t.Fatalf("capsule row: %q, %v", status, err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM capsule_events WHERE capsule_id = $1", c.ID()).Scan(&events); err != nil || events != 4 {
		t.Fatalf("capsule events in PostgreSQL: %d, %v; want 4", events, err)
	}

	// The agent's own event: the automatic pause at the timeout, posted
	// with the events token the agent derived from its token, is what
	// moves the capsule to paused. (A reconcile pass would record "found
	// paused by the reconciler"; the next one is a minute away.)
	ap, err := client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", TimeoutSeconds: 5, AutoPause: true})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, cpOut.String())
	}
	if _, err := ap.Wait(ctx, nestbox.StatusPaused); err != nil {
		t.Fatalf("wait for the automatic pause: %v\n%s", err, cpOut.String())
	}
	history, err := ap.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(history, func(ev nestbox.CapsuleEvent) bool {
		return ev.To == nestbox.StatusPaused && strings.HasPrefix(ev.Reason, "paused by the host")
	}) {
		t.Fatalf("the automatic pause did not come as the agent's event: %+v\n%s", history, cpOut.String())
	}
	if _, err := ap.Kill(ctx); err != nil {
		t.Fatalf("kill the paused capsule: %v", err)
	}
}

// TestFleet runs a fleet as README's fleet section sets it up: two
// `nestbox server` replicas on one PostgreSQL and Redis, and three agents
// that join it with one join token through either replica, each agent in
// a network namespace of its own with its own address on a bridge where
// the replicas listen, as hosts on a LAN. It checks scheduling (cordon
// steers creates, no capacity is 503 no_capacity), traffic through the
// replica a capsule was not created on, hosts that blink (an agent killed
// and restarted; another's network cut in its namespace and restored,
// with the agent running on): their capsules go missing when heartbeats
// stop and run again seconds after, the others' are untouched, and a
// destroy through one replica cuts a stream held through the other.
func TestFleet(t *testing.T) {
	b := requirePlatform(t)
	bin := buildNestbox(t)
	dbURL := freshDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	lan := newFleetNetwork(t, "fl", "10.227.0", 3)

	type replica struct {
		addr string
		out  syncBuffer
		done chan error
	}
	var cps [2]*replica
	var key string
	metricsAddr := freeAddr(t) // replica 0's --metrics-listen
	for i := range cps {
		r := &replica{addr: net.JoinHostPort(lan.hostIP, strconv.Itoa(freePort(t))), done: make(chan error, 1)}
		cps[i] = r
		cpCtx, cpCancel := context.WithCancel(ctx)
		dir := t.TempDir()
		args := []string{"--data-dir", dir, "--listen", r.addr, "--database-url", dbURL, "--redis-url", redisURL(),
			"--heartbeat-interval", "1s", "--reconcile-interval", "1h", "--log-level", "warn"}
		if i == 0 {
			args = append(args, "--metrics-listen", metricsAddr)
		}
		go func() { r.done <- runServer(cpCtx, args, &r.out, &r.out) }()
		defer func() {
			cpCancel()
			if err := <-r.done; err != nil {
				t.Errorf("nestbox server %d: %v\n%s", i, err, r.out.String())
			}
		}()
		waitHTTP(t, "http://"+r.addr+"/health")
		if i == 0 {
			// The first replica bootstraps the admin and its key; the
			// second finds them in the database.
			var err error
			if _, key, err = nestbox.LoadCredentials(dir); err != nil {
				t.Fatal(err)
			}
		}
	}
	clients := make([]*nestbox.Client, 2)
	for i, r := range cps {
		c, err := nestbox.New(nestbox.Config{URL: "http://" + r.addr, APIKey: key})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	logs := func() string { return "replica 0:\n" + cps[0].out.String() + "\nreplica 1:\n" + cps[1].out.String() }

	tok, err := clients[0].CreateJoinToken(ctx, nestbox.CreateJoinTokenRequest{Uses: 3, TTLSeconds: 600})
	if err != nil {
		t.Fatalf("create a join token: %v", err)
	}
	tokFile := filepath.Join(t.TempDir(), "join-token")
	if err := os.WriteFile(tokFile, []byte(tok.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agents := make([]*agentProcess, 3)
	for k, a := range []struct{ prefix, cidr, cgroup string }{
		{"nbf", "10.221.0.0/24", "/nestbox-e2e-fleet-a"},
		{"nbh", "10.222.0.0/24", "/nestbox-e2e-fleet-b"},
		{"nbi", "10.223.0.0/24", "/nestbox-e2e-fleet-c"},
	} {
		agents[k] = startFleetAgentIn(t, b, bin, lan.ns[k], net.JoinHostPort(lan.ip[k], "5007"), "http://"+cps[k%2].addr, tokFile, a.prefix, a.cidr, a.cgroup)
	}
	if toks, err := clients[1].JoinTokens(ctx); err != nil || len(toks) != 0 {
		t.Errorf("join tokens after all three uses: %+v, %v; want none usable", toks, err)
	}

	// Every host heartbeats, whichever replica is asked. ids is in the
	// agents' order.
	ids := make([]string, len(agents))
	waitFor(t, 30*time.Second, "three reachable hosts with capacity", func() bool {
		hosts, err := clients[1].Hosts(ctx)
		if err != nil || len(hosts) != len(agents) {
			return false
		}
		for _, h := range hosts {
			if !h.Reachable || h.Capacity.MemoryTotalBytes == 0 {
				return false
			}
			for k, a := range agents {
				if h.URL == "http://"+a.addr {
					ids[k] = h.ID
				}
			}
		}
		return true
	})
	setAll := func(action string, except int) {
		t.Helper()
		for k, id := range ids {
			if k != except {
				if _, err := clients[k%2].SetHostState(ctx, id, action); err != nil {
					t.Fatalf("%s %s: %v", action, id, err)
				}
			}
		}
		time.Sleep(1100 * time.Millisecond) // past the replicas' host caches
	}

	create := func(via int, meta string) *nestbox.Handle {
		t.Helper()
		c, err := clients[via].Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", Metadata: map[string]string{"fleet": meta}})
		if err != nil {
			t.Fatalf("create via replica %d: %v\n%s", via, err, logs())
		}
		return c
	}
	hostOf := func(h *nestbox.Handle) string {
		t.Helper()
		c, err := clients[0].Get(ctx, h.ID())
		if err != nil {
			t.Fatal(err)
		}
		return c.HostID
	}

	// Cordon steers: with every other host cordoned, a create goes to the
	// one left, through either replica.
	onHost := make([]*nestbox.Handle, len(agents))
	for k := range agents {
		setAll("cordon", k)
		onHost[k] = create(k%2, ids[k])
		if got := hostOf(onHost[k]); got != ids[k] {
			t.Errorf("with all hosts but %s cordoned, a create went to %s", ids[k], got)
		}
		setAll("uncordon", -1)
	}

	// Traffic reaches each capsule through the replica that did not
	// create it.
	for k, h := range onHost {
		res, err := clients[1-k%2].Capsule(h.ID()).Exec(ctx, []string{"echo", "on " + ids[k]})
		if err != nil || res.Stdout != "on "+ids[k]+"\n" {
			t.Errorf("exec on host %s through replica %d: %+v, %v", ids[k], 1-k%2, res, err)
		}
	}

	// No capacity anywhere: every host draining.
	setAll("drain", -1)
	_, err = clients[1].Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"})
	var apiErr *nestbox.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.Code != "no_capacity" {
		t.Errorf("create with every host draining: %v, want 503 no_capacity", err)
	}
	if err := clients[0].RemoveHost(ctx, ids[0]); !errors.As(err, &apiErr) || apiErr.StatusCode != 409 {
		t.Errorf("remove a host with a live capsule: %v, want 409", err)
	}
	setAll("uncordon", -1)

	// Hosts blink. The periodic reconcile is an hour away
	// (--reconcile-interval): only the host monitor and the reconcile
	// that a returning heartbeat starts can move a capsule to missing and
	// back. Host 1's agent is killed and restarted; host 0's network is
	// cut in its namespace (it runs on, but neither heartbeats nor
	// answers) and restored. Host 2 is not touched.
	for _, blink := range []struct {
		k          int
		name       string
		down, back func()
	}{
		{1, "killed and restarted", agents[1].kill, agents[1].start},
		{0, "cut off and reconnected", func() { lan.cut(0) }, func() { lan.restore(0) }},
	} {
		blink.down()
		if _, err := onHost[blink.k].Wait(ctx, nestbox.StatusMissing); err != nil {
			t.Fatalf("host %s %s: wait for its capsule to be missing: %v\n%s", ids[blink.k], blink.name, err, logs())
		}
		if h, err := clients[0].Host(ctx, ids[blink.k]); err != nil || h.Reachable {
			t.Errorf("the silent host: %+v, %v; want unreachable", h, err)
		}
		// The fleet's metrics show it (replica 0's host list is at most a
		// second old).
		waitFor(t, 10*time.Second, "nestbox_fleet_hosts to count one unreachable host", func() bool {
			fams := scrapeMetrics(t, "http://"+metricsAddr)
			return metricstest.Value(t, fams, "nestbox_fleet_hosts", "state", "active", "reachable", "false") == 1 &&
				metricstest.Value(t, fams, "nestbox_fleet_hosts", "state", "active", "reachable", "true") == 2 &&
				metricstest.Value(t, fams, "nestbox_fleet_host_heartbeat_age_seconds", "host", ids[blink.k]) >= 3
		})
		back := time.Now()
		blink.back()
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		_, err := onHost[blink.k].Wait(wctx, nestbox.StatusRunning)
		wcancel()
		if err != nil {
			t.Fatalf("host %s %s: wait for its capsule to run again: %v\n%s", ids[blink.k], blink.name, err, logs())
		}
		t.Logf("host %s %s: its capsule ran again %s after it came back", ids[blink.k], blink.name, time.Since(back).Round(10*time.Millisecond))
		res, err := onHost[blink.k].Exec(ctx, []string{"echo", "back"})
		if err != nil || res.Stdout != "back\n" {
			t.Errorf("exec after host %s came back: %+v, %v", ids[blink.k], res, err)
		}
	}
	if c, err := clients[1].Get(ctx, onHost[2].ID()); err != nil || c.Status != nestbox.StatusRunning {
		t.Errorf("the capsule of the host that did not blink: %+v, %v; want running", c, err)
	}
	history, err := clients[0].Capsule(onHost[2].ID()).Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range history {
		if ev.To == nestbox.StatusMissing {
			t.Errorf("the capsule of the host that did not blink went missing: %+v", history)
		}
	}

	// A destroy through one replica ends a stream held through the other.
	stream, err := clients[1].Capsule(onHost[0].ID()).ExecStream(ctx, nestbox.ExecRequest{Cmd: []string{"sleep", "600"}})
	if err != nil {
		t.Fatalf("exec stream through replica 1: %v", err)
	}
	ended := make(chan error, 1)
	go func() { _, err := stream.Wait(); ended <- err }()
	for _, h := range onHost {
		if _, err := clients[0].Capsule(h.ID()).Kill(ctx); err != nil {
			t.Errorf("kill %s: %v", h.ID(), err)
		}
	}
	select {
	case <-ended:
	case <-time.After(time.Minute):
		t.Errorf("a stream through replica 1 outlived its capsule's destroy through replica 0")
	}
	stream.Close()
}

// scrapeMetrics reads a --metrics-listen endpoint.
func scrapeMetrics(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d", url, resp.StatusCode)
	}
	return metricstest.Parse(t, resp.Body)
}

// waitFor polls cond every 100 ms until it holds, failing after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
	}
}

// TestFleetReplicaKilled SIGKILLs a `nestbox server` replica right after
// it accepted creates, with their host calls in flight: the other replica
// keeps serving (a create through it runs at once), and no capsule stays
// transient. Nothing touches the dead
// replica's capsules any more, so the surviving replica's reconcile takes
// them for stuck after three touch intervals and resolves them from what
// the host says; a capsule it finds running works, one it finds gone is
// error with nothing left on the host.
func TestFleetReplicaKilled(t *testing.T) {
	b := requirePlatform(t)
	bin := buildNestbox(t)
	dbURL := freshDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	flags := []string{"--database-url", dbURL, "--redis-url", redisURL(), "--heartbeat-interval", "1s", "--reconcile-interval", "3s", "--log-level", "warn"}

	// Replica A runs in this process and bootstraps the admin.
	dirA, addrA := t.TempDir(), freeAddr(t)
	var outA syncBuffer
	aCtx, aCancel := context.WithCancel(ctx)
	aDone := make(chan error, 1)
	go func() {
		aDone <- runServer(aCtx, append([]string{"--data-dir", dirA, "--listen", addrA}, flags...), &outA, &outA)
	}()
	defer func() {
		aCancel()
		if err := <-aDone; err != nil {
			t.Errorf("replica A: %v\n%s", err, outA.String())
		}
	}()
	waitHTTP(t, "http://"+addrA+"/health")
	_, key, err := nestbox.LoadCredentials(dirA)
	if err != nil {
		t.Fatal(err)
	}
	// Replica B is a process of its own, to be SIGKILLed.
	addrB := freeAddr(t)
	var outB syncBuffer
	procB := exec.Command(bin, append([]string{"server", "--data-dir", t.TempDir(), "--listen", addrB}, flags...)...)
	procB.Stdout, procB.Stderr = &outB, &outB
	if err := procB.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { procB.Process.Kill(); procB.Wait() }()
	waitHTTP(t, "http://"+addrB+"/health")

	clientA, err := nestbox.New(nestbox.Config{URL: "http://" + addrA, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	clientB, err := nestbox.New(nestbox.Config{URL: "http://" + addrB, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clientA.CreateJoinToken(ctx, nestbox.CreateJoinTokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(t.TempDir(), "join-token")
	if err := os.WriteFile(tokFile, []byte(tok.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ag := startFleetAgent(t, b, bin, "http://"+addrA, tokFile, "nbj", "10.224.0.0/24", "/nestbox-e2e-fleet-kill")
	waitFor(t, 30*time.Second, "a reachable host with capacity", func() bool {
		hs, err := clientB.Hosts(ctx)
		return err == nil && len(hs) == 1 && hs[0].Reachable && hs[0].Capacity.MemoryTotalBytes > 0
	})

	// Four creates through B, answered at once (202); B dies with their
	// host calls in flight.
	var ids []string
	for range 4 {
		h, err := clientB.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"}, nestbox.NoWait())
		if err != nil {
			t.Fatalf("create through B: %v\n%s", err, outB.String())
		}
		ids = append(ids, h.ID())
	}
	procB.Process.Kill()
	procB.Wait()
	killed := time.Now()

	// A serves at once, creates included, while B's capsules are still
	// in flight for nobody.
	onA, err := clientA.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"})
	if err != nil {
		t.Fatalf("create through A after B's death: %v\n%s", err, outA.String())
	}
	if res, err := onA.Exec(ctx, []string{"echo", "A serves"}); err != nil || res.Stdout != "A serves\n" {
		t.Errorf("exec through A after B's death: %+v, %v", res, err)
	}

	// A keeps serving, and every capsule leaves its transient status.
	final := map[string]nestbox.Capsule{}
	waitFor(t, 3*time.Minute, "every capsule B was creating to leave starting", func() bool {
		for _, id := range ids {
			c, err := clientA.Get(ctx, id)
			if err != nil {
				t.Fatalf("get %s through A: %v", id, err)
			}
			if c.Status == nestbox.StatusStarting {
				return false
			}
			final[id] = c
		}
		return true
	})
	t.Logf("all %d capsules resolved %s after replica B was killed", len(ids), time.Since(killed).Round(100*time.Millisecond))
	for _, id := range ids {
		c := final[id]
		switch c.Status {
		case nestbox.StatusRunning:
			res, err := clientA.Capsule(id).Exec(ctx, []string{"echo", "ok"})
			if err != nil || res.Stdout != "ok\n" {
				t.Errorf("capsule %s is running after B's death, but exec: %+v, %v", id, res, err)
			}
		case nestbox.StatusError:
		default:
			t.Errorf("capsule %s ended %s after B's death (%s), want running or error", id, c.Status, c.Error)
		}
		t.Logf("capsule %s: %s %s", id, c.Status, c.Error)
	}
	if _, err := onA.Kill(ctx); err != nil {
		t.Errorf("kill %s: %v", onA.ID(), err)
	}
	for _, id := range ids {
		if final[id].Status == nestbox.StatusRunning {
			if _, err := clientA.Capsule(id).Kill(ctx); err != nil {
				t.Errorf("kill %s: %v", id, err)
			}
		}
	}
	// Nothing B started is left on the host: every sandbox the agent has
	// is one the store knows as running (none, after the kills).
	waitFor(t, time.Minute, "the host to run no sandbox", func() bool {
		resp, err := ag.client.ListSandboxes(ctx, connect.NewRequest(&agentpb.ListSandboxesRequest{}))
		return err == nil && len(resp.Msg.GetSandboxes()) == 0
	})
}
