package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/driver/gvisor"
	"nestbox.dev/internal/proto/agentpb"
)

// pauseSizes are the memory a benchmarked sandbox holds, in MiB, by name.
var pauseSizes = []struct {
	name string
	mib  int
}{{"idle", 0}, {"100MiB", 100}, {"1GiB", 1024}}

// reportNamed reports the p50 and p99 of ds in milliseconds as
// <name>-p50-ms and <name>-p99-ms.
func reportNamed(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(p int) float64 { return float64(ds[(len(ds)-1)*p/100]) / float64(time.Millisecond) }
	b.ReportMetric(at(50), name+"-p50-ms")
	b.ReportMetric(at(99), name+"-p99-ms")
}

// benchSandbox creates a sandbox holding mib MiB of random data in its
// memory (a tmpfs under /dev lives in the sandbox's memory).
func benchSandbox(b *testing.B, ta *testAgent, mib int) *agentpb.Sandbox {
	b.Helper()
	sb := ta.create(b, &agentpb.SandboxConfig{MemoryMb: uint32(256 + mib*5/4), TimeoutSeconds: 3600})
	if mib > 0 {
		mustSh(b, ta.process(sb.Id, "", "root"), fmt.Sprintf("mkdir -p /dev/hold && head -c %d /dev/urandom > /dev/hold/pattern", mib<<20))
	}
	return sb
}

// BenchmarkPauseResume measures PauseSandbox, ResumeSandbox and the first
// command after the resume (an exec of `true` through envd) through the
// agent's API, per tier and per memory held. Compare with
// BenchmarkBareCheckpoint for the agent's overhead over runsc.
func BenchmarkPauseResume(b *testing.B) {
	for _, tier := range []string{tierMemory, tierDisk} {
		for _, size := range pauseSizes {
			b.Run(tier+"/"+size.name, func(b *testing.B) {
				h := newTestHost(b)
				ta := h.startAgent(b, "", func(c *Config) {
					c.PauseMemoryGrace = time.Hour
					if tier == tierDisk {
						c.PauseMemoryGrace = -1
					}
				})
				sb := benchSandbox(b, ta, size.mib)
				pc := ta.process(sb.Id, "", "root")
				var pause, resume, first []time.Duration
				b.ResetTimer()
				for range b.N {
					start := time.Now()
					p, err := ta.pauseRPC(sb.Id, false)
					if err != nil {
						b.Fatalf("pause: %v", err)
					}
					pause = append(pause, time.Since(start))
					if p.PauseTier != tier {
						b.Fatalf("paused in the %s tier, want %s", p.PauseTier, tier)
					}
					start = time.Now()
					if _, err := ta.resumeRPC(sb.Id); err != nil {
						b.Fatalf("resume: %v", err)
					}
					resume = append(resume, time.Since(start))
					start = time.Now()
					mustSh(b, pc, "true")
					first = append(first, time.Since(start))
				}
				b.StopTimer()
				reportNamed(b, "pause", pause)
				reportNamed(b, "resume", resume)
				reportNamed(b, "first-exec", first)
				for i := range resume {
					resume[i] += first[i]
				}
				reportNamed(b, "resume-to-exec", resume)
			})
		}
	}
}

// BenchmarkBareCheckpoint measures runsc alone on a sandbox the agent
// made: `runsc checkpoint` (the flags the driver uses) until it returns,
// and `runsc restore -detach` of the same images and bundle into the same
// network namespace until envd answers /health. The container is deleted
// between the two, untimed. The floor under BenchmarkPauseResume's disk
// tier.
func BenchmarkBareCheckpoint(b *testing.B) {
	for _, size := range pauseSizes {
		b.Run(size.name, func(b *testing.B) {
			h := newTestHost(b)
			// The crash monitor would take the sandbox between the
			// checkpoint and the restore for dead, and remove it.
			ta := h.startAgent(b, "", func(c *Config) { c.MonitorInterval = time.Hour })
			sb := benchSandbox(b, ta, size.mib)
			s := ta.lookup(sb.Id)
			runscRoot := filepath.Join(h.dataDir, "runsc")
			images := filepath.Join(h.dataDir, "bare-images")
			runsc := func(args ...string) *exec.Cmd {
				return exec.Command(h.p.runsc, append([]string{"--root=" + runscRoot, "--platform=systrap", "--overlay2=none", "--allow-suid"}, args...)...)
			}
			var checkpoint, restore []time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				os.RemoveAll(images)
				out, err := runsc("state", sb.Id).Output()
				var st struct{ Pid int }
				if err != nil || json.Unmarshal(out, &st) != nil {
					b.Fatalf("runsc state: %v %s", err, out)
				}
				pidfd, err := unix.PidfdOpen(st.Pid, 0)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()

				start := time.Now()
				if out, err := runsc("checkpoint", "-direct", "-image-path="+images, sb.Id).CombinedOutput(); err != nil {
					b.Fatalf("runsc checkpoint: %v %s", err, out)
				}
				checkpoint = append(checkpoint, time.Since(start))

				b.StopTimer()
				unix.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, 30000)
				unix.Close(pidfd)
				if out, err := runsc("delete", "-force", sb.Id).CombinedOutput(); err != nil {
					b.Fatalf("runsc delete: %v %s", err, out)
				}
				// gVisor took the guest's address off the namespace's
				// link: the network is built again, as a resume does.
				opts, err := networkOptions(s.cfg)
				if err != nil {
					b.Fatal(err)
				}
				n, err := ta.net.Rebuild(context.Background(), s.net, opts)
				if err != nil {
					b.Fatalf("rebuild network: %v", err)
				}
				ta.mu.Lock()
				s.net = n
				ta.mu.Unlock()
				console, _ := os.OpenFile(filepath.Join(h.dataDir, "bare-console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				cmd := runsc("--log="+filepath.Join(h.dataDir, "bare-runsc.log"), "restore", "-detach", "-direct",
					"-image-path="+images, "-bundle", filepath.Join(s.dir, "bundle"), sb.Id)
				cmd.Stdout, cmd.Stderr = console, console
				b.StartTimer()

				start = time.Now()
				if err := cmd.Run(); err != nil {
					b.Fatalf("runsc restore: %v", err)
				}
				hctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err = ta.envd.waitHealthy(hctx, s.net.Addr())
				cancel()
				if err != nil {
					b.Fatalf("envd after restore: %v", err)
				}
				restore = append(restore, time.Since(start))
				b.StopTimer()
				console.Close()
				b.StartTimer()
			}
			b.StopTimer()
			os.RemoveAll(images)
			reportNamed(b, "checkpoint", checkpoint)
			reportNamed(b, "restore", restore)
		})
	}
}

// BenchmarkResumeLoading compares the two ways runsc loads a disk-tier
// snapshot's memory: all pages read with O_DIRECT before the sandbox runs
// (-direct, the driver's default) and lazily in the background
// (-background, gvisor.Config.LazyRestore). It reports the resume, the
// first command (`true`) and the first read of all the memory the sandbox
// held (its pattern file on a tmpfs), each from the end of the one before.
func BenchmarkResumeLoading(b *testing.B) {
	for _, lazy := range []bool{false, true} {
		for _, size := range pauseSizes[1:] {
			name := map[bool]string{false: "direct", true: "background"}[lazy]
			b.Run(name+"/"+size.name, func(b *testing.B) {
				h := newTestHost(b)
				ta := h.startAgent(b, "", func(c *Config) {
					c.PauseMemoryGrace = -1
					d, err := gvisor.New(gvisor.Config{Runsc: c.Runsc, Root: filepath.Join(c.DataDir, "runsc"), CgroupParent: c.CgroupParent, LazyRestore: lazy})
					if err != nil {
						b.Fatal(err)
					}
					c.Driver = d
				})
				sb := benchSandbox(b, ta, size.mib)
				pc := ta.process(sb.Id, "", "root")
				var resume, first, touch []time.Duration
				b.ResetTimer()
				for range b.N {
					b.StopTimer()
					if _, err := ta.pauseRPC(sb.Id, false); err != nil {
						b.Fatalf("pause: %v", err)
					}
					b.StartTimer()
					start := time.Now()
					if _, err := ta.resumeRPC(sb.Id); err != nil {
						b.Fatalf("resume: %v", err)
					}
					resume = append(resume, time.Since(start))
					start = time.Now()
					mustSh(b, pc, "true")
					first = append(first, time.Since(start))
					start = time.Now()
					mustSh(b, pc, "cat /dev/hold/pattern > /dev/null")
					touch = append(touch, time.Since(start))
				}
				b.StopTimer()
				reportNamed(b, "resume", resume)
				reportNamed(b, "first-exec", first)
				reportNamed(b, "read-all-memory", touch)
			})
		}
	}
}
