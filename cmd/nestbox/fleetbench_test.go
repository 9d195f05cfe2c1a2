package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/postgres"
)

// readLoadClients are the numbers of concurrent clients BenchmarkAPIReadLoad
// runs, each with its own keep-alive connection.
var readLoadClients = []int{8, 32}

// BenchmarkAPIReadLoad measures the API's list (GET /v1/capsules, the
// default page of 100, and pages of 10) and get (GET /v1/capsules/{id})
// under load: a
// `nestbox server` process on PostgreSQL and Redis, 200 capsules of the
// admin's team in the store, and 8 or 32 clients in this process sending
// b.N requests in all, each its next as soon as its last is answered. It
// reports the requests per second and each request's p50 and p99. The
// load generator shares the machine with the server and PostgreSQL.
func BenchmarkAPIReadLoad(b *testing.B) {
	bin := buildNestbox(b)
	dbURL := freshDatabase(b)
	addr, dir := freeAddr(b), b.TempDir()
	var out syncBuffer
	srv := exec.Command(bin, "server", "--data-dir", dir, "--listen", addr, "--database-url", dbURL, "--redis-url", redisURL(), "--log-level", "warn")
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	waitHTTP(b, "http://"+addr+"/health")
	_, key, err := nestbox.LoadCredentials(dir)
	if err != nil {
		b.Fatal(err)
	}
	ids := seedCapsules(b, dbURL, 200)

	for _, clients := range readLoadClients {
		benchReads(b, addr, key, ids, clients, &out)
	}
}

// benchReads runs BenchmarkAPIReadLoad's requests with clients
// concurrent clients.
func benchReads(b *testing.B, addr, key string, ids []string, clients int, out *syncBuffer) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	for _, tc := range []struct {
		name string
		path func(i int) string
	}{
		{"list", func(int) string { return "/v1/capsules" }},
		{"list-limit-10", func(int) string { return "/v1/capsules?limit=10" }},
		{"get", func(i int) string { return "/v1/capsules/" + ids[i%len(ids)] }},
	} {
		b.Run(fmt.Sprintf("%s/clients=%d", tc.name, clients), func(b *testing.B) {
			var (
				next  atomic.Int64
				mu    sync.Mutex
				ds    []time.Duration
				fails atomic.Int64
				wg    sync.WaitGroup
			)
			start := time.Now()
			for range clients {
				wg.Go(func() {
					var mine []time.Duration
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							break
						}
						req, _ := http.NewRequest(http.MethodGet, "http://"+addr+tc.path(i), nil)
						req.Header.Set("Authorization", "Bearer "+key)
						t0 := time.Now()
						resp, err := client.Do(req)
						if err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
						mine = append(mine, time.Since(t0))
						if err != nil || resp.StatusCode != http.StatusOK {
							fails.Add(1)
						}
					}
					mu.Lock()
					ds = append(ds, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			if n := fails.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed\n%s", n, b.N, out.String())
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			reportPercentiles(b, ds)
		})
	}
}

// seedCapsules records n running capsules of the database's one team (the
// bootstrap's) straight in the store, and returns their IDs.
func seedCapsules(b *testing.B, dbURL string, n int) []string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	var team string
	err = conn.QueryRow(ctx, "SELECT id FROM teams LIMIT 1").Scan(&team)
	conn.Close(ctx)
	if err != nil {
		b.Fatalf("the bootstrap's team: %v", err)
	}
	st, err := postgres.Open(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	expires := now.Add(time.Hour)
	var ids []string
	for k := range n {
		c := store.Capsule{Capsule: nestbox.Capsule{
			ID: capsulespec.NewID(), TeamID: team, Template: "minimal", Status: nestbox.StatusRunning,
			VCPUs: 1, MemoryMB: 512, DiskMB: 1024, HostID: "h_bench", CreatedAt: now, StartedAt: &now, ExpiresAt: &expires,
			Metadata: map[string]string{"n": fmt.Sprint(k)},
		}, UpdatedAt: now, Generation: 1}
		if err := st.CreateCapsule(ctx, c); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	return ids
}

// BenchmarkFleetCreate measures creates through a fleet on this machine:
// three agents (each its own data directory, network range and cgroup)
// joined to two `nestbox server` replicas on PostgreSQL and Redis. Each
// sub-benchmark uses the first 1, 2 or 3 hosts (the others cordoned) and
// sends its creates through 1 or 2 replicas (alternating), 6 at a time,
// each from the request until the capsule runs (minimal template). It
// reports creates per second and the p50 and p99 of one create; the
// capsules are destroyed after each sub-benchmark, untimed.
func BenchmarkFleetCreate(b *testing.B) {
	plat := requirePlatform(b)
	bin := buildNestbox(b)
	dbURL := freshDatabase(b)
	ctx := context.Background()
	rs := startFleetReplicas(b, ctx, 2, "127.0.0.1", dbURL, redisURL(), "--heartbeat-interval", "1s", "--reconcile-interval", "1h",
		"--team-max-capsules", "-1", "--team-max-vcpus", "-1", "--team-max-memory-mb", "-1", "--team-max-disk-mb", "-1")
	tokFile := joinFile(b, ctx, rs[0].client, 3)
	var procs []*agentProcess
	var urls []string
	for k, a := range []struct{ prefix, cidr, cgroup string }{
		{"nbq", "10.231.0.0/24", "/nestbox-bench-fleet-a"},
		{"nbr", "10.232.0.0/24", "/nestbox-bench-fleet-b"},
		{"nbs", "10.233.0.0/24", "/nestbox-bench-fleet-c"},
	} {
		p := startFleetAgent(b, plat, bin, "http://"+rs[k%2].addr, tokFile, a.prefix, a.cidr, a.cgroup)
		procs = append(procs, p)
		urls = append(urls, "http://"+p.addr)
	}
	hosts := waitHosts(b, ctx, rs[0].client, urls)
	// The template is built on each host by its first create: once per
	// host before any timing.
	for k := range hosts {
		setHostsActive(b, ctx, rs[0].client, hosts, k+1, k)
		h, err := rs[0].client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"})
		if err != nil {
			b.Fatalf("first create on host %s: %v\n%s", hosts[k], err, replicaLogs(rs))
		}
		h.Kill(ctx)
	}
	const concurrency = 6
	for _, nAgents := range []int{1, 2, 3} {
		for _, nCPs := range []int{1, 2} {
			b.Run(fmt.Sprintf("agents=%d/cps=%d", nAgents, nCPs), func(b *testing.B) {
				setHostsActive(b, ctx, rs[0].client, hosts, nAgents, -1)
				var (
					next    atomic.Int64
					mu      sync.Mutex
					ds      []time.Duration
					created []*nestbox.Handle
					failed  []string
					wg      sync.WaitGroup
				)
				start := time.Now()
				for range concurrency {
					wg.Go(func() {
						for {
							i := int(next.Add(1)) - 1
							if i >= b.N {
								return
							}
							t0 := time.Now()
							h, err := rs[i%nCPs].client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"})
							d := time.Since(t0)
							mu.Lock()
							if h != nil {
								created = append(created, h)
							}
							if err != nil {
								failed = append(failed, err.Error())
							} else {
								ds = append(ds, d)
							}
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				for _, h := range created {
					h.Kill(ctx)
				}
				if len(failed) > 0 {
					b.Fatalf("%d of %d creates failed: %s", len(failed), b.N, strings.Join(failed, "; "))
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "creates/s")
				reportPercentiles(b, ds)
			})
		}
	}
}

// setHostsActive makes the first n hosts active and cordons the rest
// (except, if not -1, only host only is active), and waits past the
// replicas' host caches.
func setHostsActive(b *testing.B, ctx context.Context, c *nestbox.Client, hosts []string, n, only int) {
	b.Helper()
	for k, id := range hosts {
		action := "uncordon"
		if k >= n || (only >= 0 && k != only) {
			action = "cordon"
		}
		if _, err := c.SetHostState(ctx, id, action); err != nil {
			b.Fatalf("%s %s: %v", action, id, err)
		}
	}
	time.Sleep(1100 * time.Millisecond)
}
