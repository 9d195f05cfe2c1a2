package network

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/testenv"
)

// runscSandboxes starts gVisor sandboxes (busybox httpd serving one
// file) in networks of a manager, for the tests that check the topology
// with the runtime that owns the guest's interface.
type runscSandboxes struct {
	t       *testing.T
	runsc   string
	busybox string
	root    string // runsc --root
	dir     string
}

func newRunsc(t *testing.T) *runscSandboxes {
	t.Helper()
	runsc, err := filepath.Abs("../../bin/runsc")
	if err == nil {
		_, err = os.Stat(runsc)
	}
	if err != nil {
		testenv.Missing(t, "bin/runsc is missing (link the built runsc into bin/)")
	}
	busybox := testenv.RequireCommand(t, "busybox")
	r := &runscSandboxes{t: t, runsc: runsc, busybox: busybox, root: t.TempDir(), dir: t.TempDir()}
	// runsc leaves the gofer's empty namespace mounted in its root.
	t.Cleanup(func() { unix.Unmount(filepath.Join(r.root, "null-netns"), unix.MNT_DETACH) })
	return r
}

// rootfs makes (once) the root filesystem named page: a static busybox
// and an index.html that says page.
func (r *runscSandboxes) rootfs(page string) string {
	r.t.Helper()
	rootfs := filepath.Join(r.dir, "rootfs-"+page)
	if _, err := os.Stat(rootfs); err == nil {
		return rootfs
	}
	for _, d := range []string{"bin", "proc", "tmp", "www"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			r.t.Fatal(err)
		}
	}
	b, err := os.ReadFile(r.busybox)
	if err == nil {
		err = os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(rootfs, "www", "index.html"), []byte(page), 0o644)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return rootfs
}

// cmd runs runsc and returns its output. The output goes to a file, not a
// pipe: a detached sandbox inherits it and keeps it open.
func (r *runscSandboxes) cmd(args ...string) (string, error) {
	full := append([]string{"--root=" + r.root, "--platform=systrap", "--overlay2=none", "--log=" + filepath.Join(r.dir, "runsc.log")}, args...)
	out, err := os.CreateTemp(r.dir, "out")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(r.runsc, full...)
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	if err != nil {
		return string(b), fmt.Errorf("runsc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

// bundle writes the OCI bundle of container id in network sb, with the
// root filesystem whose httpd answers page.
func (r *runscSandboxes) bundle(id string, sb Sandbox, page string) string {
	r.t.Helper()
	dir := filepath.Join(r.dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	spec := map[string]any{
		"ociVersion": "1.0.0",
		"process": map[string]any{
			"user": map[string]any{"uid": 0, "gid": 0},
			"args": []string{"/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"},
			"env":  []string{"PATH=/bin"},
			"cwd":  "/",
		},
		"root":     map[string]any{"path": r.rootfs(page), "readonly": true},
		"hostname": "sandbox",
		"mounts": []map[string]any{
			{"destination": "/proc", "type": "proc", "source": "proc"},
			{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
		},
		"linux": map[string]any{
			"namespaces": []map[string]any{
				{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
				{"type": "network", "path": sb.NetNS},
			},
		},
	}
	b, err := json.Marshal(spec)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		r.t.Fatal(err)
	}
	return dir
}

func (r *runscSandboxes) run(id string, sb Sandbox, page string) {
	r.t.Helper()
	bundle := r.bundle(id, sb, page)
	r.t.Cleanup(func() { r.cmd("delete", "-force", id) })
	if _, err := r.cmd("run", "-detach", "-bundle", bundle, id); err != nil {
		r.t.Fatal(err)
	}
}

// waitStopped waits until container id has stopped (a checkpoint
// returns before its sandbox has exited).
func (r *runscSandboxes) waitStopped(id string) {
	r.t.Helper()
	for range 300 {
		out, err := r.cmd("state", id)
		var st struct{ Status string }
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.Status == "stopped" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("container %s still running after its checkpoint", id)
}

// agentGet fetches / from port 8080 at sb's address with a marked socket,
// as the agent dials, retrying while the sandbox comes up.
func agentGet(t *testing.T, sb Sandbox) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{Control: MarkControl}).DialContext, DisableKeepAlives: true}}
	var err error
	for range 100 {
		var resp *http.Response
		if resp, err = client.Get("http://" + net.JoinHostPort(sb.Addr().String(), "8080") + "/"); err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("status %d, %v", resp.StatusCode, rerr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s at %s: %v", sb.ID, sb.Addr(), err)
	return ""
}

// TestRunscSharedAddress runs real gVisor sandboxes in the shared-address
// topology: two started ones with the same guest address answer at their
// own exposed addresses; then one is checkpointed and restored twice, into
// two new networks, as a fork does: both copies, whose netstacks carry the
// checkpointed guest address, answer at their own exposed addresses while
// the other started one still does.
func TestRunscSharedAddress(t *testing.T) {
	r := newRunsc(t)
	m := sharedManager(t)
	ctx := context.Background()
	a := setup(t, m, "runsc-a", Options{})
	b := setup(t, m, "runsc-b", Options{})
	r.run("nbtrunsca", a, "a")
	r.run("nbtrunscb", b, "b")
	for _, sb := range []Sandbox{a, b} {
		if got, want := agentGet(t, sb), strings.TrimPrefix(sb.ID, "runsc-"); got != want {
			t.Fatalf("sandbox %s at %s answered %q, want %q", sb.ID, sb.Addr(), got, want)
		}
	}
	// The fork: checkpoint b, restore it twice into new networks.
	img := filepath.Join(r.dir, "image")
	if _, err := r.cmd("checkpoint", "--image-path", img, "nbtrunscb"); err != nil {
		t.Fatal(err)
	}
	r.waitStopped("nbtrunscb")
	// runsc's state says stopped before the sandbox process is reaped,
	// and a plain delete refuses until it is (gvisor-lab.md); the images
	// are complete once checkpoint returns, so -force loses nothing.
	if _, err := r.cmd("delete", "-force", "nbtrunscb"); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"nbtforkx", "nbtforky"} {
		sb := setup(t, m, fmt.Sprintf("runsc-fork-%d", i), Options{})
		if err := m.Readd(ctx, sb); err != nil {
			t.Fatal(err)
		}
		bundle := r.bundle(id, sb, "b")
		t.Cleanup(func() { r.cmd("delete", "-force", id) })
		if _, err := r.cmd("restore", "-detach", "--image-path", img, "-bundle", bundle, id); err != nil {
			t.Fatal(err)
		}
		if got := agentGet(t, sb); got != "b" {
			t.Errorf("fork %s at %s answered %q, want b's page", id, sb.Addr(), got)
		}
	}
	if got := agentGet(t, a); got != "a" {
		t.Errorf("sandbox a answered %q after the forks", got)
	}
}
