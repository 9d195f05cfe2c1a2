package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// withPool configures a warm pool of size sandboxes of the minimal
// template (the fake world's default size).
func withPool(size int) func(*Config) {
	return func(c *Config) { c.Pools = []PoolSpec{{Template: "minimal", Size: size}} }
}

// waitPooled waits until ta's pools hold n ready sandboxes and returns
// their runtime names.
func (ta *testAgent) waitPooled(t testing.TB, n int) []string {
	t.Helper()
	return ta.waitPooledFor(t, n, 10*time.Second)
}

// runtimeOf is the runtime name of capsule id.
func (ta *testAgent) runtimeOf(t testing.TB, id string) string {
	t.Helper()
	sb := ta.lookup(id)
	if sb == nil {
		t.Fatalf("sandbox %s is not registered", id)
	}
	return sb.rid
}

// TestFakePoolClaim: a create that a pool serves takes a pooled sandbox
// (no new runtime), gets its own token, env vars and egress rules, is
// reported under its own ID only, and the pool fills up again.
func TestFakePoolClaim(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, withPool(2))
	pooled := ta.waitPooled(t, 2)
	for _, rid := range pooled {
		if !strings.HasPrefix(rid, "0") || !capsulespec.ValidID(rid) {
			t.Errorf("pooled runtime name %q: want a capsule-ID shape starting with 0", rid)
		}
	}
	if l := ta.list(); len(l) != 0 {
		t.Fatalf("list shows pooled sandboxes: %v", l)
	}
	if ta.exists(t, pooled[0]) {
		t.Fatal("GetSandbox finds a pooled sandbox by its runtime name")
	}
	ta.destroyRPC(t, pooled[0]) // no one's to destroy: a no-op
	if len(ta.pooled()) != 2 {
		t.Fatal("DestroySandbox of a pooled runtime name removed it")
	}
	tokens := map[string]string{} // runtime name -> the pool's envd token
	for _, rid := range pooled {
		tokens[rid] = ta.lookupPooled(t, rid).cfg.AccessToken
	}

	envs := map[string]string{"WHO": "claimer"}
	// Internet on, no lists: what a control plane sends by default.
	sb := ta.create(t, &agentpb.SandboxConfig{AccessToken: "claim-token", EnvVars: envs, TimeoutSeconds: 120, Internet: true})
	rid := ta.runtimeOf(t, sb.Id)
	if !slices.Contains(pooled, rid) {
		t.Fatalf("create ran in runtime %s, want one of the pooled %v", rid, pooled)
	}
	if ids, _ := w.driver.List(context.Background()); slices.Contains(ids, sb.Id) {
		t.Fatalf("a runtime named after the capsule was started: %v", ids)
	}
	if sb.State != agentpb.SandboxState_SANDBOX_STATE_RUNNING || sb.EndAt.AsTime().Sub(sb.StartedAt.AsTime()) != 120*time.Second {
		t.Errorf("claimed sandbox: %v", sb)
	}
	ta.wantEnvs(t, sb.Id, "claim-token", envs, "after the claim")
	for r, tok := range tokens {
		if tok == "" {
			t.Fatalf("pooled sandbox %s has no envd token", r)
		}
		if code, _ := ta.envdGet(t, sb.Id, tok, "/envs"); code != http.StatusUnauthorized {
			t.Errorf("the pool's token of %s opens the claimed sandbox (runtime %s): %d", r, rid, code)
		}
	}
	if l := ta.list(); len(l) != 1 || l[0].Id != sb.Id {
		t.Errorf("list after the claim: %v", l)
	}
	rec, err := readState(filepath.Join(w.dataDir, "sandboxes", rid))
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != sb.Id || rec.RuntimeID != rid || rec.Status != statusRunning {
		t.Errorf("state file of the claimed sandbox: id %s runtime %s status %s", rec.ID, rec.RuntimeID, rec.Status)
	}
	if got := w.net.egressOf(rid); !got.Internet || len(got.AllowOut) > 0 {
		t.Errorf("egress of a default create: %+v", got)
	}
	ta.waitPooled(t, 2) // refilled

	// Egress rules of the create replace the pool's.
	closed := ta.create(t, &agentpb.SandboxConfig{Internet: false, AllowOut: []string{"192.0.2.0/24"}})
	crid := ta.runtimeOf(t, closed.Id)
	if crid == closed.Id {
		t.Fatal("a create with egress rules was not served from the pool")
	}
	if got := w.net.egressOf(crid); got.Internet || len(got.AllowOut) != 1 || got.AllowOut[0].String() != "192.0.2.0/24" {
		t.Errorf("egress of the claimed sandbox: %+v", got)
	}

	// Another size: cold.
	cold := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 512})
	if r := ta.runtimeOf(t, cold.Id); r != cold.Id {
		t.Errorf("a 512 MiB create was served by pooled sandbox %s of a 256 MiB pool", r)
	}

	for _, id := range []string{sb.Id, closed.Id, cold.Id} {
		ta.destroyRPC(t, id)
	}
	if ids, _ := w.driver.List(context.Background()); slices.Contains(ids, rid) || slices.Contains(ids, crid) {
		t.Errorf("runtimes of destroyed claimed sandboxes remain: %v", ids)
	}
	ta.stop()
	ta.destroyAll(t)
	w.assertEmpty(t, "after the pool's sandboxes are removed")
}

// lookupPooled returns ready pooled sandbox rid.
func (ta *testAgent) lookupPooled(t testing.TB, rid string) *sandbox {
	t.Helper()
	for _, sb := range ta.pooled() {
		if sb.rid == rid {
			return sb
		}
	}
	t.Fatalf("no pooled sandbox %s", rid)
	return nil
}

// TestFakePoolClaimFailures injects a failure after each step of a claim:
// the create is served cold instead, the pooled sandbox is removed, and
// nothing is left after the destroy.
func TestFakePoolClaimFailures(t *testing.T) {
	for _, failing := range claimSteps {
		t.Run(failing, func(t *testing.T) {
			w := newFakeWorld(t)
			var armed sync.Mutex
			fail := false
			ta := w.startAgent(t, func(c *Config) {
				withPool(1)(c)
				c.failAt = func(step string) error {
					armed.Lock()
					defer armed.Unlock()
					if fail && step == failing {
						fail = false
						return errors.New("injected")
					}
					return nil
				}
			})
			pooled := ta.waitPooled(t, 1)
			armed.Lock()
			fail = true
			armed.Unlock()
			sb := ta.create(t, &agentpb.SandboxConfig{AccessToken: "tok", EnvVars: map[string]string{"A": "1"}})
			if r := ta.runtimeOf(t, sb.Id); r != sb.Id {
				t.Errorf("after a failed claim the create ran in %s, want a cold start", r)
			}
			ta.wantEnvs(t, sb.Id, "tok", map[string]string{"A": "1"}, "cold create after a failed claim")
			if ids, _ := w.driver.List(context.Background()); slices.Contains(ids, pooled[0]) {
				t.Errorf("the pooled sandbox of the failed claim still runs: %v", ids)
			}
			ta.destroyRPC(t, sb.Id)
			ta.stop()
			ta.destroyAll(t)
			w.assertEmpty(t, "after a failed claim")
		})
	}
}

// TestFakePoolBrokenSandbox: a pooled sandbox whose runtime died is not
// handed out: the claim fails, removes it and takes the next one.
func TestFakePoolBrokenSandbox(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, withPool(2))
	pooled := ta.waitPooled(t, 2)
	for _, rid := range pooled {
		w.driver.Crash(rid)
	}
	sb := ta.create(t, &agentpb.SandboxConfig{})
	if r := ta.runtimeOf(t, sb.Id); slices.Contains(pooled, r) {
		t.Fatalf("create was given dead pooled sandbox %s", r)
	}
	eventually(t, 5*time.Second, "dead pooled sandboxes removed", func() bool {
		ids, _ := w.driver.List(context.Background())
		return !slices.ContainsFunc(pooled, func(r string) bool { return slices.Contains(ids, r) })
	})
	ta.destroyRPC(t, sb.Id)
	ta.stop()
	ta.destroyAll(t)
	w.assertEmpty(t, "after broken pooled sandboxes")
}

// TestFakePoolRoom: pooled sandboxes give their room to creates (never
// making one fail), and the pools' memory budget caps them.
func TestFakePoolRoom(t *testing.T) {
	t.Run("max sandboxes", func(t *testing.T) {
		w := newFakeWorld(t)
		ta := w.startAgent(t, func(c *Config) { withPool(2)(c); c.MaxSandboxes = 2 })
		ta.waitPooled(t, 2)
		// Another size (not from the pool) needs the room of a pooled one.
		a := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 512})
		b := ta.create(t, &agentpb.SandboxConfig{MemoryMb: 512})
		if ta.runtimeOf(t, a.Id) != a.Id || ta.runtimeOf(t, b.Id) != b.Id {
			t.Fatal("creates of another size were served from the pool")
		}
		if n := len(ta.pooled()); n != 0 {
			t.Errorf("%d pooled sandboxes next to 2 capsules with --max-sandboxes 2", n)
		}
		if _, err := ta.tryCreate(&agentpb.SandboxConfig{}); !errors.Is(err, errdefs.ErrExhausted) && !strings.Contains(fmt.Sprint(err), "maximum") {
			t.Errorf("a third create: %v, want the host's maximum", err)
		}
		ta.destroyRPC(t, a.Id)
		ta.waitPooled(t, 1) // the pool takes the room back
	})
	t.Run("budget", func(t *testing.T) {
		w := newFakeWorld(t)
		ta := w.startAgent(t, func(c *Config) { withPool(3)(c); c.PoolMemoryMB = 600 })
		ta.waitPooled(t, 2) // 2 x 256 MiB fit in 600, a third does not
		refused := ta.prom.refused.WithLabelValues("pool", reasonPoolBudget)
		eventually(t, 10*time.Second, "a fill refused for the budget", func() bool {
			var m dto.Metric
			return refused.Write(&m) == nil && m.GetCounter().GetValue() >= 1
		})
		if n := len(ta.pooled()); n != 2 {
			t.Errorf("%d pooled sandboxes of 256 MiB in a 600 MiB budget", n)
		}
	})
	t.Run("no budget", func(t *testing.T) {
		w := newFakeWorld(t)
		ta := w.startAgent(t, func(c *Config) { withPool(3)(c); c.PoolMemoryMB = -1 })
		ta.waitPooled(t, 3)
	})
}

// TestFakePoolConcurrentClaims: concurrent creates each get their own
// sandbox, pooled or cold, never the same runtime twice.
func TestFakePoolConcurrentClaims(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, withPool(3))
	ta.waitPooled(t, 3)
	const n = 8
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			sb, err := ta.tryCreate(&agentpb.SandboxConfig{AccessToken: fmt.Sprintf("tok-%d", i)})
			if err == nil {
				ids[i] = sb.Id
			}
			errs[i] = err
		})
	}
	wg.Wait()
	rids := map[string]string{}
	claimed := 0
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatalf("create %d: %v", i, errs[i])
		}
		r := ta.runtimeOf(t, id)
		if prev, ok := rids[r]; ok {
			t.Fatalf("capsules %s and %s share runtime %s", prev, id, r)
		}
		rids[r] = id
		if r != id {
			claimed++
		}
		ta.wantEnvs(t, id, fmt.Sprintf("tok-%d", i), nil, "concurrent create")
	}
	if claimed == 0 {
		t.Error("no create of the burst was served by the pool of 3")
	}
	t.Logf("%d of %d creates served by the pool", claimed, n)
}

// TestFakePoolRestart: a restarted agent adopts its pooled sandboxes, and
// serves a create from them; an agent without pools removes them, with no
// event for sandboxes no control plane knew.
func TestFakePoolRestart(t *testing.T) {
	w := newFakeWorld(t)
	ta := w.startAgent(t, withPool(2))
	pooled := ta.waitPooled(t, 2)
	ta.kill()

	tb := w.startAgent(t, withPool(2))
	again := tb.waitPooled(t, 2)
	slices.Sort(pooled)
	slices.Sort(again)
	if !slices.Equal(pooled, again) {
		t.Fatalf("pooled after a restart %v, want the adopted %v", again, pooled)
	}
	sb := tb.create(t, &agentpb.SandboxConfig{AccessToken: "after-restart"})
	if r := tb.runtimeOf(t, sb.Id); !slices.Contains(pooled, r) {
		t.Fatalf("create after a restart ran in %s, want an adopted pooled sandbox", r)
	}
	tb.wantEnvs(t, sb.Id, "after-restart", nil, "claim after a restart")
	tb.destroyRPC(t, sb.Id)
	tb.waitPooled(t, 2)
	tb.kill()

	tc := w.startAgent(t, nil)
	eventually(t, 5*time.Second, "pooled sandboxes removed by an agent without pools", func() bool {
		return len(w.leftovers()) == 0
	})
	if l := tc.list(); len(l) != 0 {
		t.Errorf("list: %v", l)
	}
}

// TestFakePoolFillFailures: a fill that fails at any step of a create
// leaves nothing behind and is retried.
func TestFakePoolFillFailures(t *testing.T) {
	for _, failing := range []string{stepTemplate, stepDir, stepNetwork, stepRootfs, stepState, stepDriver, stepHealth, stepInit} {
		t.Run(failing, func(t *testing.T) {
			w := newFakeWorld(t)
			var mu sync.Mutex
			left := 1
			ta := w.startAgent(t, func(c *Config) {
				withPool(1)(c)
				c.failAt = func(step string) error {
					mu.Lock()
					defer mu.Unlock()
					if step == failing && left > 0 {
						left--
						return errors.New("injected")
					}
					return nil
				}
			})
			// The first fill fails; the retry (a second later) fills.
			ta.waitPooled(t, 1)
			ta.stop()
			ta.destroyAll(t)
			w.assertEmpty(t, "after a failed fill and its retry")
		})
	}
}

func TestParsePoolSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PoolSpec
		bad  string
	}{
		{in: "base=2", want: PoolSpec{Template: "base", Size: 2}},
		{in: "minimal=4:1:256", want: PoolSpec{Template: "minimal", Size: 4, VCPUs: 1, MemoryMB: 256}},
		{in: "base=0", want: PoolSpec{Template: "base"}},
		{in: "base", bad: "want TEMPLATE=SIZE"},
		{in: "=2", bad: "want TEMPLATE=SIZE"},
		{in: "nope=2", bad: "unknown template"},
		{in: "base=-1", bad: "not a positive number"},
		{in: "base=x", bad: "not a positive number"},
		{in: "base=2:1", bad: "want TEMPLATE=SIZE"},
		{in: "base=2:0:256", bad: "not a positive number"},
		{in: "base=100000", bad: "at most"},
	} {
		got, err := ParsePoolSpec(tc.in)
		if tc.bad != "" {
			if err == nil || !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("ParsePoolSpec(%q) = %v, %v; want an invalid-argument error with %q", tc.in, got, err, tc.bad)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePoolSpec(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, err := ParsePoolSpec(got.String()); err != nil || back != got {
			t.Errorf("ParsePoolSpec(%q.String() = %q) = %+v, %v", tc.in, got.String(), back, err)
		}
	}
	if err := checkPools([]PoolSpec{{Template: "base", Size: 1}, {Template: "base", Size: 2}}); err == nil {
		t.Error("checkPools accepts the same pool twice")
	}
}

func FuzzParsePoolSpec(f *testing.F) {
	for _, s := range []string{"base=2", "minimal=4:1:256", "=", "base=:", "base=1:2:3:4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePoolSpec(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ParsePoolSpec(%q): %v is not an invalid-argument error", s, err)
			}
			return
		}
		if p.Size < 0 || p.Size > MaxPoolSize || p.VCPUs < 0 || p.MemoryMB < 0 {
			t.Fatalf("ParsePoolSpec(%q) = %+v", s, p)
		}
		if err := checkPools([]PoolSpec{p}); err != nil {
			t.Fatalf("ParsePoolSpec(%q) = %+v, which checkPools refuses: %v", s, p, err)
		}
	})
}
