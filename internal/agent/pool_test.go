package agent

import (
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// TestPool runs warm pools on gVisor: a create served from the pool is
// indistinguishable from a cold one inside (processes, env vars, files,
// the hostname), answers only to its own token, takes the create's egress
// rules and is isolated like any sandbox; the pool refills, and nothing is
// left once the pool's sandboxes are removed.
func TestPool(t *testing.T) {
	h := newTestHost(t)
	ext := startExternal(t)
	ta := h.startAgent(t, "", func(c *Config) { c.Pools = []PoolSpec{{Template: "minimal", Size: 2}} })
	pooled := ta.waitPooledFor(t, 2, 2*time.Minute)
	tokens := map[string]string{}
	for _, sb := range ta.pooled() {
		tokens[sb.rid] = sb.cfg.AccessToken
	}

	envs := map[string]string{"NB_WHO": "tenant", "NB_N": "42"}
	spec := func(memoryMB uint32, internet bool) *agentpb.SandboxConfig {
		return &agentpb.SandboxConfig{AccessToken: "tenant-token", EnvVars: envs, MemoryMb: memoryMB, Internet: internet}
	}
	// The cold control: another memory size, which the pool does not
	// serve.
	cold := ta.create(t, spec(320, true))
	warm := ta.create(t, spec(256, true))
	offline := ta.create(t, spec(256, false))
	for _, c := range []struct {
		sb     *agentpb.Sandbox
		pooled bool
	}{{cold, false}, {warm, true}, {offline, true}} {
		rid := ta.runtimeOf(t, c.sb.Id)
		if got := rid != c.sb.Id; got != c.pooled {
			t.Fatalf("sandbox %s runs in runtime %s: from the pool %v, want %v (pooled were %v)", c.sb.Id, rid, got, c.pooled, pooled)
		}
	}

	// What a tenant sees inside: the same in both but the memory size
	// and the uptime, which the inspection leaves out. ps runs alone (in
	// a pipeline it would race the other commands' execs: "sh" or
	// "sort"), and its output is sorted afterwards.
	inspect := "hostname; id; pwd; env | grep -v '^_=' | sort; p=$(ps -o user,comm); echo \"$p\" | sort; " +
		"find /tmp /home /root /run /var/tmp -xdev 2>/dev/null | sort; ls -la /tmp /home/user | awk '{print $1, $3, $4, $9}'"
	coldView := mustSh(t, ta.process(cold.Id, "tenant-token", ""), inspect)
	warmView := mustSh(t, ta.process(warm.Id, "tenant-token", ""), inspect)
	if coldView != warmView {
		t.Errorf("a pooled sandbox differs from a cold one inside:\ncold:\n%s\npooled:\n%s", coldView, warmView)
	}
	// On the host: the writable layers hold the same files (what the
	// runtime writes at a start; nothing more in the pooled one).
	if c, w := upperFiles(t, ta.lookup(cold.Id)), upperFiles(t, ta.lookup(warm.Id)); !slices.Equal(c, w) {
		t.Errorf("writable layers differ:\ncold:   %v\npooled: %v", c, w)
	}
	for k, v := range envs {
		if !strings.Contains(warmView, k+"="+v) {
			t.Errorf("pooled sandbox lacks env var %s=%s:\n%s", k, v, warmView)
		}
	}
	for rid, tok := range tokens {
		if code, _ := ta.envdGet(t, warm.Id, tok, "/envs"); code != http.StatusUnauthorized {
			t.Errorf("the pool's token of %s opens the claimed sandbox: %d", rid, code)
		}
	}
	if code, _ := ta.envdGet(t, warm.Id, "", "/envs"); code != http.StatusUnauthorized {
		t.Errorf("no token opens the claimed sandbox: %d", code)
	}

	// Isolation holds for pooled sandboxes: the egress rules are the
	// create's, and no sandbox reaches another.
	probes := []probe{
		{warm, ext, true, "pooled, internet on"},
		{offline, ext, false, "pooled, internet off"},
		{cold, ext, true, "cold, internet on (the control)"},
	}
	for _, pair := range [][2]*agentpb.Sandbox{{warm, cold}, {cold, warm}, {warm, offline}, {offline, warm}} {
		probes = append(probes, probe{pair[0], fmt.Sprintf("http://%s:%d/health", pair[1].Address, EnvdPort), false, "another sandbox"})
	}
	reachProbes(t, ta, "tenant-token", probes)

	ta.waitPooledFor(t, 2, 2*time.Minute) // refilled
	for _, sb := range []*agentpb.Sandbox{cold, warm, offline} {
		ta.destroyRPC(t, sb.Id)
	}
	ta.stop()
	ta.destroyAll(t)
	assertClean(t, h.dataDir)
}

// upperFiles lists what sb's writable layer holds (its upper directory,
// relative paths), leaving out the agent's logs and overlay's work
// directory.
func upperFiles(t *testing.T, sb *sandbox) []string {
	t.Helper()
	var out []string
	root := sb.layer.UpperMount
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (rel == "logs" || rel == "work" || rel == "lost+found") {
			return filepath.SkipDir
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("list the layer of %s: %v", sb.id, err)
	}
	return out
}

// waitPooledFor is waitPooled with a bound of its own (a real start, or a
// template build, takes longer than a fake one).
func (ta *testAgent) waitPooledFor(t testing.TB, n int, bound time.Duration) []string {
	t.Helper()
	var rids []string
	eventually(t, bound, fmt.Sprintf("%d pooled sandboxes ready", n), func() bool {
		rids = rids[:0]
		for _, sb := range ta.pooled() {
			rids = append(rids, sb.rid)
		}
		return len(rids) == n
	})
	return slices.Clone(rids)
}
