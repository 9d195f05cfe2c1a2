package main

import (
	"context"
	"crypto/rand"
	"net/http"
	"path/filepath"
	"slices"
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

func startBenchPlatform(b *testing.B) benchPlatform {
	addr := freeAddr(b)
	// The reconciler would destroy the sandboxes made on the agent
	// directly, which the control plane does not know.
	p := startUp(b, "--agent-listen", addr, "--reconcile-interval", "1h")
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
			var (
				mu sync.Mutex
				wg sync.WaitGroup
				hs []*nestbox.Handle
			)
			for range 10 {
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
			b.StopTimer()
			for _, h := range hs {
				h.Kill(ctx)
			}
			b.StartTimer()
		}
		reportPercentiles(b, ds)
	})
	b.Run("agent-sequential", func(b *testing.B) {
		var ds []time.Duration
		for range b.N {
			id, token := capsulespec.NewID(), rand.Text()
			start := time.Now()
			_, err := p.agent.CreateSandbox(ctx, connect.NewRequest(&agentpb.CreateSandboxRequest{Config: &agentpb.SandboxConfig{
				Id: id, Template: "base", Vcpus: 1, MemoryMb: 512, Internet: true, AccessToken: token,
			}}))
			if err != nil {
				b.Fatal(err)
			}
			envd := envdclient.New(envdclient.Config{BaseURL: p.agentURL + "/proxy/" + id + "/49983", AccessToken: token, HTTPClient: p.http})
			if res, err := envd.Run(ctx, nestbox.ExecRequest{Cmd: []string{"true"}}); err != nil || res.ExitCode != 0 {
				b.Fatalf("exec: %+v, %v", res, err)
			}
			ds = append(ds, time.Since(start))
			b.StopTimer()
			p.agent.DestroySandbox(ctx, connect.NewRequest(&agentpb.DestroySandboxRequest{Id: id}))
			b.StartTimer()
		}
		reportPercentiles(b, ds)
	})
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
