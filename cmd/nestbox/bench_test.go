package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/agent"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/envdclient"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// These benchmarks measure the platform through its API, next to the host
// agent alone in the same run (and scripts/bench.sh runs bare runsc in the
// same `make bench`), so the control plane's share shows as a ratio.

func reportPercentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(p int) float64 { return float64(ds[(len(ds)-1)*p/100]) / float64(time.Millisecond) }
	b.ReportMetric(at(50), "p50-ms")
	b.ReportMetric(at(99), "p99-ms")
	b.ReportMetric(0, "ns/op") // the percentiles are the result
}

// benchPlatform is a `nestbox up` whose agent is also reachable directly.
type benchPlatform struct {
	*platform
	agentURL string
	http     *http.Client // presents the agent token
	agent    agentpbconnect.AgentClient
}

func startBenchPlatform(b testing.TB, extra ...string) benchPlatform {
	addr := freeAddr(b)
	// The reconciler would destroy the sandboxes made on the agent
	// directly, which the control plane does not know.
	p := startUp(b, append([]string{"--agent-listen", addr, "--reconcile-interval", "1h"}, extra...)...)
	tok, err := agent.ReadTokenFile(filepath.Join(p.dataDir, "agent-token"))
	if err != nil {
		b.Fatal(err)
	}
	return benchPlatform{platform: p, agentURL: "http://" + addr, http: agentHTTPClient(tok),
		agent: agentpbconnect.NewAgentClient(agentHTTPClient(tok), "http://"+addr, connect.WithProtoJSON())}
}

// BenchmarkCreateToFirstExec measures from the create request until the
// first command (`true`) in the new capsule has returned, base template:
// through the API one at a time, through the API ten at a time, and
// against the host agent directly (CreateSandbox, then envd through the
// agent's proxy).
func BenchmarkCreateToFirstExec(b *testing.B) {
	p := startBenchPlatform(b)
	ctx := context.Background()
	b.Run("api-sequential", func(b *testing.B) {
		var ds []time.Duration
		for range b.N {
			start := time.Now()
			h := apiCreateExec(b, p.client)
			ds = append(ds, time.Since(start))
			b.StopTimer()
			h.Kill(ctx)
			b.StartTimer()
		}
		reportPercentiles(b, ds)
	})
	b.Run("api-concurrent10", func(b *testing.B) {
		var ds []time.Duration
		for range b.N {
			ds = append(ds, apiBurst(b, p, 10)...)
		}
		reportPercentiles(b, ds)
	})
	b.Run("api-burst20", func(b *testing.B) {
		// 20 cold starts at once take seconds on 2 cores: 3 bursts (60
		// creates) are enough for the percentiles.
		var ds []time.Duration
		for i := 0; i < b.N && i < 3; i++ {
			ds = append(ds, apiBurst(b, p, 20)...)
		}
		reportPercentiles(b, ds)
	})
	b.Run("agent-sequential", func(b *testing.B) {
		var ds []time.Duration
		for range b.N {
			ds = append(ds, agentCreateExec(b, p, &agentpb.SandboxConfig{Template: "base", Vcpus: 1, MemoryMb: 512, Internet: true}))
		}
		reportPercentiles(b, ds)
	})
}

// agentCreateExec creates a sandbox of cfg (given an ID and a token here)
// on the agent directly, runs `true` in it through the agent's proxy, and
// returns the time of both; it destroys the sandbox off the clock.
func agentCreateExec(b *testing.B, p benchPlatform, cfg *agentpb.SandboxConfig) time.Duration {
	ctx := context.Background()
	cfg.Id, cfg.AccessToken = capsulespec.NewID(), rand.Text()
	start := time.Now()
	if _, err := p.agent.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: cfg})); err != nil {
		b.Fatal(err)
	}
	envd := envdclient.New(envdclient.Config{BaseURL: p.agentURL + "/proxy/" + cfg.Id + "/49983", AccessToken: cfg.AccessToken, HTTPClient: p.http})
	if res, err := envd.Run(ctx, nestbox.ExecRequest{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
		b.Fatalf("exec: %+v, %v", res, err)
	}
	d := time.Since(start)
	b.StopTimer()
	p.agent.DestroySandbox(ctx, connect.NewRequest(&agentpb.DestroySandboxRequest{Id: cfg.Id}))
	b.StartTimer()
	return d
}

func apiCreateExec(b *testing.B, c *nestbox.Client) *nestbox.Handle {
	ctx := context.Background()
	h, err := c.Create(ctx, nestbox.CreateCapsuleRequest{})
	if err != nil {
		b.Fatal(err)
	}
	if res, err := h.Exec(ctx, []string{"true"}); err != nil || res.ExitCode != 0 {
		b.Fatalf("exec: %+v, %v", res, err)
	}
	return h
}

// BenchmarkExecRoundTrip measures one command (`true`) in a running base
// capsule until its exit status is back: through the API (SDK → control
// plane → agent proxy → envd), and from envd's client on the agent's
// proxy directly.
func BenchmarkExecRoundTrip(b *testing.B) {
	p := startBenchPlatform(b)
	ctx := context.Background()
	h, err := p.client.Create(ctx, nestbox.CreateCapsuleRequest{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Kill(ctx)
	b.Run("api", func(b *testing.B) {
		var ds []time.Duration
		for range b.N {
			start := time.Now()
			if res, err := h.Exec(ctx, []string{"true"}); err != nil || res.ExitCode != 0 {
				b.Fatalf("exec: %+v, %v", res, err)
			}
			ds = append(ds, time.Since(start))
		}
		reportPercentiles(b, ds)
	})
	b.Run("agent", func(b *testing.B) {
		id, token := capsulespec.NewID(), rand.Text()
		if _, err := p.agent.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: &agentpb.SandboxConfig{
			Id: id, Template: "base", Vcpus: 1, MemoryMb: 512, AccessToken: token,
		}})); err != nil {
			b.Fatal(err)
		}
		defer p.agent.DestroySandbox(ctx, connect.NewRequest(&agentpb.DestroySandboxRequest{Id: id}))
		envd := envdclient.New(envdclient.Config{BaseURL: p.agentURL + "/proxy/" + id + "/49983", AccessToken: token, HTTPClient: p.http})
		var ds []time.Duration
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			if res, err := envd.Run(ctx, nestbox.ExecRequest{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
				b.Fatalf("exec: %+v, %v", res, err)
			}
			ds = append(ds, time.Since(start))
		}
		reportPercentiles(b, ds)
	})
}

// BenchmarkPooledCreateToFirstExec is BenchmarkCreateToFirstExec with a
// warm pool of 20 base sandboxes (--pool base=20): one create at a time
// through the API and against the agent, and bursts of 20 concurrent
// creates through the API. Between iterations (off the clock) it waits for
// the pool to be full again, so each create is a claim; a claim that
// misses falls back to a cold start and shows in p99.
func BenchmarkPooledCreateToFirstExec(b *testing.B) {
	const poolSize = 20
	// 20 base sandboxes of 512 MiB are 10 GiB of limits: above the
	// default budget of the pools (8 GiB).
	p := startBenchPlatform(b, "--pool", "base="+strconv.Itoa(poolSize), "--pool-memory-mb", "16384")
	ctx := context.Background()
	waitPool(b, p, poolSize)
	b.Run("api-sequential", func(b *testing.B) {
		var ds []time.Duration
		for range b.N {
			start := time.Now()
			h := apiCreateExec(b, p.client)
			ds = append(ds, time.Since(start))
			b.StopTimer()
			h.Kill(ctx)
			waitPool(b, p, poolSize)
			b.StartTimer()
		}
		reportPercentiles(b, ds)
	})
	b.Run("api-burst20", func(b *testing.B) {
		// A refill of 20 takes seconds: 5 bursts (100 creates) are
		// enough for the percentiles.
		var ds []time.Duration
		for i := 0; i < b.N && i < 5; i++ {
			ds = append(ds, apiBurst(b, p, 20)...)
			b.StopTimer()
			waitPool(b, p, poolSize)
			b.StartTimer()
		}
		reportPercentiles(b, ds)
	})
	b.Run("agent-sequential", func(b *testing.B) {
		var ds []time.Duration
		for range b.N {
			// The agent's defaults: the pool's size.
			ds = append(ds, agentCreateExec(b, p, &agentpb.SandboxConfig{Template: "base", Internet: true}))
			b.StopTimer()
			waitPool(b, p, poolSize)
			b.StartTimer()
		}
		reportPercentiles(b, ds)
	})
	b.Logf("pool claims: %s", poolClaims(b, p))
}

// apiBurst creates n capsules at once through the API, each to its first
// command, and returns each one's time; it kills them afterwards (the
// times are each create's own, so the kills do not count).
func apiBurst(b *testing.B, p benchPlatform, n int) []time.Duration {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
		ds []time.Duration
		hs []*nestbox.Handle
	)
	for range n {
		wg.Go(func() {
			start := time.Now()
			h := apiCreateExec(b, p.client)
			mu.Lock()
			ds = append(ds, time.Since(start))
			hs = append(hs, h)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, h := range hs {
		h.Kill(context.Background())
	}
	return ds
}

// agentMetric returns the value of the agent's metric line that starts
// with prefix (name and labels), or -1.
func agentMetric(t testing.TB, p benchPlatform, prefix string) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, p.agentURL+"/metrics", nil)
	resp, err := p.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// waitPool waits until the agent's pools hold n sandboxes.
func waitPool(t testing.TB, p benchPlatform, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for agentMetric(t, p, `nestbox_agent_sandboxes{status="pooled",tier=""}`) != float64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("the warm pool did not fill to %d", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The metric counts a pooled sandbox a moment before it can be
	// claimed (its state file is being written).
	time.Sleep(10 * time.Millisecond)
}

// poolClaims is the agent's claim counters, for the log.
func poolClaims(t testing.TB, p benchPlatform) string {
	var parts []string
	for _, r := range []string{"hit", "miss", "failed"} {
		parts = append(parts, fmt.Sprintf("%s %v", r, agentMetric(t, p, `nestbox_agent_pool_claims_total{result="`+r+`"}`)))
	}
	return strings.Join(parts, ", ")
}
