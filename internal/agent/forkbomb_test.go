package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev/internal/driver/gvisor"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/processpb"
)

// TestForkBombStaysInside runs fork bombs in sandboxes at the default pids
// limit and at a low one. It counts each bomb's own pids cgroup (not the
// host's threads, which other work on the machine moves): the bomb must
// reach its limit (pids.events "max" > 0, or the sandbox ended), never
// pass it, and while three bombs run at once the agent still creates,
// runs a command in and destroys another sandbox. With a low host-wide cap
// (the parent cgroup's pids.max), bombs whose own limits add up past it
// stop at the cap together, and the agent still destroys them. Destroying
// them all leaves nothing.
func TestForkBombStaysInside(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int64 // 0: the default
		total int64 // the parent's cap; 0: the default
		bombs int
	}{
		{"default-limit", 0, 0, 3},
		{"low-limit", 256, 0, 1},
		{"host-wide-cap", 0, 1500, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHost(t)
			limit := tc.limit
			if limit == 0 {
				limit = gvisor.DefaultPidsLimit
			}
			if tc.total > 0 {
				// The next driver resets the cap; until then, none.
				t.Cleanup(func() { os.WriteFile(parentCgroupFile("pids.max"), []byte("max"), 0o644) })
			}
			ta := h.startAgent(t, "", func(c *Config) {
				if tc.limit == 0 && tc.total == 0 {
					return // the agent's own driver, as in production
				}
				d, err := gvisor.New(gvisor.Config{Runsc: c.Runsc, Root: filepath.Join(c.DataDir, "runsc"), CgroupParent: c.CgroupParent, PidsLimit: tc.limit, TotalPidsLimit: tc.total})
				if err != nil {
					t.Fatal(err)
				}
				c.Driver = d
			})
			var bombs []*agentpb.Sandbox
			for range tc.bombs {
				bombs = append(bombs, ta.create(t, &agentpb.SandboxConfig{}))
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, b := range bombs {
				if got := readCgroupInt(t, b.Id, "pids.max"); got != limit {
					t.Fatalf("pids.max of %s: %d, want %d", b.Id, got, limit)
				}
				stream, err := ta.process(b.Id, "", "").Start(ctx, connect.NewRequest(&processpb.StartRequest{
					Process: &processpb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", "f(){ f | f & }; f"}},
				}))
				if err != nil {
					t.Fatal(err)
				}
				stream.Receive() // the start event; the stream may never end
				defer stream.Close()
			}

			// While they run: peak use of each bomb's cgroup, and a whole
			// lifecycle of another sandbox.
			peaks := make([]int64, len(bombs))
			var parentPeak int64
			var mu sync.Mutex
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					for i, b := range bombs {
						if n, ok := cgroupInt(b.Id, "pids.current"); ok {
							mu.Lock()
							peaks[i] = max(peaks[i], n)
							mu.Unlock()
						}
					}
					if n, err := os.ReadFile(parentCgroupFile("pids.current")); err == nil {
						v, _ := strconv.ParseInt(strings.TrimSpace(string(n)), 10, 64)
						mu.Lock()
						parentPeak = max(parentPeak, v)
						mu.Unlock()
					}
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
				}
			})
			// Let the bombs reach their limits (each its own, or the cap
			// together); a loaded machine takes longer, so wait for it.
			reached := func() bool {
				mu.Lock()
				defer mu.Unlock()
				if tc.total > 0 {
					return parentPeak >= tc.total-64
				}
				for i, b := range bombs {
					if n, ok := cgroupEventsMax(b.Id); peaks[i] < limit && (!ok || n == 0) {
						return false
					}
				}
				return true
			}
			for deadline := time.Now().Add(time.Minute); !reached() && time.Now().Before(deadline); {
				time.Sleep(200 * time.Millisecond)
			}
			if tc.total > 0 {
				// The cap is full: no new sandbox could start, by design.
				close(stop)
				wg.Wait()
				// cgroup v1 counts a refused fork in the forking task's own
				// cgroup, v2 in the one whose limit refused it.
				hits := parentEventsMax(t)
				for _, b := range bombs {
					n, _ := cgroupEventsMax(b.Id)
					hits += n
				}
				t.Logf("parent cgroup: peak pids.current %d of %d; refused forks %d", parentPeak, tc.total, hits)
				if parentPeak > tc.total {
					t.Errorf("the sandboxes used %d pids together, over the host-wide cap %d", parentPeak, tc.total)
				}
				// The cap must have been reached: the sandboxes' own limits
				// (1024 each) add up past it, so only the cap stops them.
				if parentPeak < tc.total-64 {
					t.Errorf("the bombs never reached the host-wide cap (peak %d of %d, %d refused forks)", parentPeak, tc.total, hits)
				}

				for _, b := range bombs {
					ta.destroyRPC(t, b.Id)
				}
				assertClean(t, h.dataDir)
				return
			}
			start := time.Now()
			calm, err := ta.tryCreate(&agentpb.SandboxConfig{})
			if err != nil {
				t.Fatalf("create during %d fork bombs: %v", len(bombs), err)
			}
			if out := mustSh(t, ta.process(calm.Id, "", ""), "echo calm"); out != "calm\n" {
				t.Errorf("a new sandbox answered %q during the fork bombs", out)
			}
			ta.destroyRPC(t, calm.Id)
			t.Logf("create + exec + destroy of another sandbox during %d bombs: %s", len(bombs), time.Since(start))
			time.Sleep(2 * time.Second)
			close(stop)
			wg.Wait()

			for i, b := range bombs {
				maxHits, ok := cgroupEventsMax(b.Id)
				alive := ta.exists(t, b.Id)
				t.Logf("bomb %d: peak pids.current %d of pids.max %d, pids.events max %d, sandbox alive: %v", i, peaks[i], limit, maxHits, alive)
				if peaks[i] > limit {
					t.Errorf("bomb %d used %d pids, over its limit %d", i, peaks[i], limit)
				}
				// The bomb must have reached the limit, or the test proves
				// nothing: the cgroup counted refusals, or gVisor ended the
				// sandbox when it hit the limit.
				if ok && maxHits == 0 && alive {
					t.Errorf("bomb %d never reached its pids limit (peak %d)", i, peaks[i])
				}
			}
			for _, b := range bombs {
				ta.destroyRPC(t, b.Id)
			}
			assertClean(t, h.dataDir)
		})
	}
}

// pidsRoot is the hierarchy that holds the sandboxes' pids cgroups: the
// pids hierarchy on cgroup v1, the unified one on v2 (Debian 12's default
// on a machine booted by systemd), as the driver chooses it.
func pidsRoot() string {
	if _, err := os.Stat("/sys/fs/cgroup/pids"); err == nil {
		return "/sys/fs/cgroup/pids"
	}
	return "/sys/fs/cgroup"
}

func parentCgroupFile(name string) string {
	return filepath.Join(pidsRoot(), testCgroup, name)
}

// parentEventsMax is the "max" counter of the parent cgroup's pids.events.
func parentEventsMax(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(parentCgroupFile("pids.events"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "max %d", &n); err != nil {
		t.Fatalf("pids.events %q: %v", b, err)
	}
	return n
}

func cgroupFile(id, name string) string {
	return filepath.Join(pidsRoot(), testCgroup, id, name)
}

// cgroupInt reads a number from a sandbox's pids cgroup; false if the
// cgroup is gone.
func cgroupInt(id, name string) (int64, bool) {
	b, err := os.ReadFile(cgroupFile(id, name))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

func readCgroupInt(t *testing.T, id, name string) int64 {
	t.Helper()
	n, ok := cgroupInt(id, name)
	if !ok {
		t.Fatalf("cannot read %s", cgroupFile(id, name))
	}
	return n
}

// cgroupEventsMax is the "max" counter of pids.events: how many forks the
// limit refused.
func cgroupEventsMax(id string) (int64, bool) {
	b, err := os.ReadFile(cgroupFile(id, "pids.events"))
	if err != nil {
		return 0, false
	}
	var n int64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "max %d", &n); err != nil {
		return 0, false
	}
	return n, true
}
