package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/agent"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// agentProcess is a `nestbox agent` run as a child process, for tests of
// the control plane and the agent as separate roles.
type agentProcess struct {
	t    testing.TB
	bin  string
	args []string
	dir  string
	addr string
	// tokenFile is the agent's token file, for `nestbox server
	// --agent-token-file`.
	tokenFile string
	client    agentpbconnect.AgentClient
	out       syncBuffer
	cmd       *exec.Cmd
	// netns, if not "", is the network namespace (a name under
	// /var/run/netns) the agent runs in; only its network is its own.
	netns string
}

// startAgentProcess starts an agent that posts its events to the control
// plane at cpAddr with token (a copy of the control plane's host-token;
// "" gives none, and the agent derives its events token from its own), in
// its own corner of the host (network prefix and range, cgroup). At the
// end of the test it destroys the agent's sandboxes, stops it, and removes
// what it leaves on the host.
func startAgentProcess(t testing.TB, b binaries, bin, cpAddr, token, prefix, cidr, cgroup string) *agentProcess {
	extra := []string{"--events-url", "http://" + cpAddr + "/v1/hosts/sandbox-events", "--host-id", "local"}
	if token != "" {
		eventsToken := filepath.Join(t.TempDir(), "host-token")
		if err := os.WriteFile(eventsToken, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, "--events-token-file", eventsToken)
	}
	a := launchAgent(t, b, bin, prefix, cidr, cgroup, extra)
	if !strings.Contains(a.out.String(), "copy it to the control plane") {
		t.Errorf("the agent did not say where its new token is:\n%s", a.out.String())
	}
	return a
}

// startFleetAgent starts an agent that joins the fleet of the control
// plane at cpURL with the join token in joinTokenFile, in its own corner
// of the host as startAgentProcess's.
func startFleetAgent(t testing.TB, b binaries, bin, cpURL, joinTokenFile, prefix, cidr, cgroup string) *agentProcess {
	a := launchAgent(t, b, bin, prefix, cidr, cgroup, []string{"--control-plane", cpURL, "--join-token-file", joinTokenFile})
	if !strings.Contains(a.out.String(), "joined the fleet of "+cpURL) {
		t.Errorf("the agent did not say it joined:\n%s", a.out.String())
	}
	return a
}

// startFleetAgentIn is startFleetAgent for an agent that runs in network
// namespace netns and listens on addr there.
func startFleetAgentIn(t testing.TB, b binaries, bin, netns, addr, cpURL, joinTokenFile, prefix, cidr, cgroup string) *agentProcess {
	a := launchAgentAt(t, b, bin, netns, addr, prefix, cidr, cgroup, []string{"--control-plane", cpURL, "--join-token-file", joinTokenFile})
	if !strings.Contains(a.out.String(), "joined the fleet of "+cpURL) {
		t.Errorf("the agent did not say it joined:\n%s", a.out.String())
	}
	return a
}

// launchAgent starts an agent with extra flags and registers its cleanup.
func launchAgent(t testing.TB, b binaries, bin, prefix, cidr, cgroup string, extra []string) *agentProcess {
	return launchAgentAt(t, b, bin, "", freeAddr(t), prefix, cidr, cgroup, extra)
}

// launchAgentAt is launchAgent for an agent in network namespace netns
// ("": the test's own) listening on addr.
func launchAgentAt(t testing.TB, b binaries, bin, netns, addr, prefix, cidr, cgroup string, extra []string) *agentProcess {
	a := &agentProcess{t: t, bin: bin, dir: t.TempDir(), addr: addr, netns: netns}
	// The agent makes its own token at its first start (or is issued one
	// when it joins a fleet).
	a.tokenFile = filepath.Join(a.dir, "agent-token")
	a.args = append([]string{"agent",
		"--data-dir", a.dir, "--listen", a.addr,
		"--runsc", b.runsc, "--envd", b.envd,
		"--template-dir", e2eTemplateDir, "--template-cache-dir", e2ePackageCache,
		"--network-prefix", prefix, "--network-cidr", cidr, "--cgroup-parent", cgroup,
		"--default-rootfs-size", "1Gi",
	}, extra...)
	a.start()
	agentToken, err := agent.ReadTokenFile(a.tokenFile)
	if err != nil {
		a.kill()
		t.Fatalf("the agent's token file after its first start: %v\n%s", err, a.out.String())
	}
	a.client = agentpbconnect.NewAgentClient(agentHTTPClient(agentToken), "http://"+a.addr, connect.WithProtoJSON())
	t.Cleanup(func() {
		a.destroyAllAndStop()
		if left := a.sandboxDirs(); len(left) > 0 {
			// Sandboxes the list does not show (one still being created
			// or removed when a test killed its control plane): a
			// restarted agent finishes or undoes them, then they can go.
			a.start()
			a.destroyAllAndStop()
			if left := a.sandboxDirs(); len(left) > 0 {
				t.Errorf("sandboxes left in the agent's data directory after a restart and a destroy of all: %v", left)
			}
		}
		for range 10 {
			if syscall.Unmount(filepath.Join(a.dir, "runsc", "null-netns"), syscall.MNT_DETACH) != nil {
				break
			}
		}
		if netns == "" { // in a namespace of its own, its table goes with it
			exec.Command("nft", "delete", "table", "inet", prefix+"_nestbox").Run()
		}
		cgs, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroup)
		for _, cg := range cgs {
			if kids, _ := filepath.Glob(filepath.Join(cg, "*", "cgroup.procs")); len(kids) > 0 {
				t.Errorf("cgroups of sandboxes left under %s: %v", cg, kids)
			}
			os.Remove(cg)
		}
		if nss, _ := filepath.Glob("/var/run/netns/" + prefix + "-*"); len(nss) > 0 {
			t.Errorf("network namespaces left: %v", nss)
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", a.out.String())
		}
	})
	return a
}

// destroyAllAndStop destroys the sandboxes the agent lists and stops it
// gracefully.
func (a *agentProcess) destroyAllAndStop() {
	resp, err := a.client.ListSandboxes(context.Background(), connect.NewRequest(&agentpb.ListSandboxesRequest{}))
	if err == nil {
		for _, sb := range resp.Msg.GetSandboxes() {
			a.client.DestroySandbox(context.Background(), connect.NewRequest(&agentpb.DestroySandboxRequest{Id: sb.GetId()}))
		}
	}
	a.stop()
}

// stop stops the agent gracefully (SIGTERM) and waits for it to exit.
func (a *agentProcess) stop() {
	a.cmd.Process.Signal(syscall.SIGCONT) // a test may have stopped it
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.cmd.Wait()
}

// sandboxDirs lists the sandbox directories in the agent's data
// directory.
func (a *agentProcess) sandboxDirs() []string {
	dirs, _ := filepath.Glob(filepath.Join(a.dir, "sandboxes", "*"))
	return dirs
}

// agentHTTPClient is an HTTP client of an agent requiring token, which it
// presents as the control plane does.
func agentHTTPClient(token string) *http.Client {
	return &http.Client{Transport: agentAuth(token)}
}

type agentAuth string

func (tok agentAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if strings.HasPrefix(r.URL.Path, "/proxy/") {
		r.Header.Set(agent.ProxyAuthHeader, "Bearer "+string(tok))
	} else {
		r.Header.Set("Authorization", "Bearer "+string(tok))
	}
	return http.DefaultTransport.RoundTrip(r)
}

// start starts the agent and waits until it answers.
func (a *agentProcess) start() {
	a.cmd = exec.Command(a.bin, a.args...)
	if a.netns != "" {
		// nsenter enters the network namespace alone and execs the agent
		// (the same process): mounts, cgroups and /var/run/netns stay the
		// host's, as for an agent on a host of its own.
		a.cmd = exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + a.netns, "--", a.bin}, a.args...)...)
	}
	a.cmd.Stdout, a.cmd.Stderr = &a.out, &a.out
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	waitHTTP(a.t, "http://"+a.addr+"/health")
}

// kill stops the agent with SIGKILL, as a crash would.
func (a *agentProcess) kill() {
	a.cmd.Process.Kill()
	a.cmd.Wait()
}
