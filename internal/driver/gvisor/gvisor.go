// Package gvisor is the sandbox driver that runs each sandbox under gVisor's
// runsc with the systrap platform, which needs no KVM. The agent hands it a
// prepared root filesystem (a host overlayfs, used with --overlay2=none so
// that writes land in the overlay's upper layer) and a network namespace;
// the driver writes an OCI bundle into the sandbox's directory and drives
// runsc. Facts it relies on are measured in docs/gvisor.md.
//
// Imported by the host agent.
package gvisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
)

// Config configures a Driver. Zero values mean the documented defaults.
type Config struct {
	// Runsc is the path of a static runsc binary; required.
	Runsc string
	// Root is runsc's state directory (--root); required. One agent, one
	// root: runsc list on it shows exactly this agent's sandboxes.
	Root string
	// Platform is runsc's platform; "" means systrap.
	Platform string
	// CgroupParent is the cgroup path under which each sandbox gets its
	// own; "" means /nestbox.
	CgroupParent string
	// PidsLimit is the host pids limit of one sandbox. It counts gVisor's
	// own threads and stub processes too (about 1.5 per process inside),
	// and reaching it may end the whole sandbox. Zero means
	// DefaultPidsLimit.
	PidsLimit int64
	// TotalPidsLimit is the pids limit of CgroupParent: all sandboxes
	// together. Zero means three quarters of the host's PIDs (at least
	// 4096 kept for the host); negative leaves the parent's limit alone.
	TotalPidsLimit int64
	// CommandTimeout bounds each runsc command but the ones that start a
	// sandbox (state, delete, list, pause, kill...): a hung runsc is
	// killed then, and the command fails with errdefs.ErrDeadlineExceeded.
	// Zero means 30 s.
	CommandTimeout time.Duration
	// StartTimeout bounds runsc run and restore; zero means 2 minutes.
	StartTimeout time.Duration
	// SettleTimeout bounds how long Settle waits for the runsc commands
	// of a previous agent before it kills them; zero means 30 s. A
	// restore killed then leaves the sandbox paused with its snapshot,
	// to be resumed again: no data is lost, and a restarted agent is not
	// held for minutes by a large restore.
	SettleTimeout time.Duration
	// LazyRestore makes a restore return once the sandbox's metadata is
	// loaded and load its memory pages in the background (runsc restore
	// -background) instead of reading them all first with O_DIRECT
	// (-direct, the default). On 2 cores the background loader competes
	// with the sandbox, so the first commands after a resume are not
	// sooner (docs/benchmarks.md measures both).
	LazyRestore bool
	// ExtraFlags are appended to every runsc invocation (e.g. --debug).
	ExtraFlags []string
	Logger     *slog.Logger
}

// DefaultPidsLimit is the default host pids limit of a sandbox: room for
// several hundred processes inside. Many sandboxes fork-bombing at once are
// held by the parent cgroup's limit (TotalPidsLimit) instead.
const DefaultPidsLimit = 1024

// Driver runs sandboxes with runsc. It keeps no state in memory: runsc's
// state directory and the sandbox directories are the truth, so a restarted
// agent sees every sandbox a previous one started.
type Driver struct {
	cfg Config
	log *slog.Logger
	// invocations counts the runsc processes started, by command
	// (Invocations).
	invocationsMu sync.Mutex
	invocations   map[string]int64
}

// Invocations returns how many runsc processes the driver started so far,
// by runsc command ("run", "state", "events", ...), for tests and
// benchmarks that check that the work of one operation does not grow with
// the sandboxes running. Safe for concurrent use.
func (d *Driver) Invocations() map[string]int64 {
	d.invocationsMu.Lock()
	defer d.invocationsMu.Unlock()
	return maps.Clone(d.invocations)
}

func (d *Driver) count(command string) {
	d.invocationsMu.Lock()
	defer d.invocationsMu.Unlock()
	if d.invocations == nil {
		d.invocations = map[string]int64{}
	}
	d.invocations[command]++
}

var (
	_ driver.Driver       = (*Driver)(nil)
	_ driver.Pauser       = (*Driver)(nil)
	_ driver.Checkpointer = (*Driver)(nil)
)

// New checks the configuration and returns a Driver.
func New(cfg Config) (*Driver, error) {
	if cfg.Runsc == "" || cfg.Root == "" {
		return nil, errdefs.Invalid("gvisor driver: runsc path and root are required")
	}
	if _, err := os.Stat(cfg.Runsc); err != nil {
		return nil, fmt.Errorf("gvisor driver: runsc: %w", err)
	}
	if cfg.Platform == "" {
		cfg.Platform = "systrap"
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "/nestbox"
	}
	if cfg.PidsLimit == 0 {
		cfg.PidsLimit = DefaultPidsLimit
	}
	if cfg.TotalPidsLimit == 0 {
		cfg.TotalPidsLimit = hostPidsCap(hostPIDs())
	}
	if cfg.TotalPidsLimit > 0 {
		if err := limitParentPids(cfg.CgroupParent, cfg.TotalPidsLimit); err != nil {
			return nil, fmt.Errorf("gvisor driver: %w", err)
		}
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = 30 * time.Second
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = 30 * time.Second
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("gvisor driver: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{cfg: cfg, log: log}, nil
}

// Name returns "gvisor".
func (d *Driver) Name() string { return "gvisor" }

// runsc runs one runsc command, for at most CommandTimeout, and returns
// its stdout. Errors carry stderr.
func (d *Driver) runsc(ctx context.Context, args ...string) ([]byte, error) {
	return d.runscWithin(ctx, d.cfg.CommandTimeout, args...)
}

// runscWithin runs one runsc command for at most timeout: then it is
// killed (SIGKILL), and the error is errdefs.ErrDeadlineExceeded. A
// hung runsc cannot hold a sandbox's lifecycle forever.
func (d *Driver) runscWithin(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	d.count(args[0])
	cmd := d.command(ctx, append(d.globalFlags(), args...), &stdout, &stderr)
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return stdout.Bytes(), fmt.Errorf("runsc %s: killed after %s: %w", args[0], timeout, errdefs.ErrDeadlineExceeded)
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.Bytes(), &runscError{args: args, msg: msg}
	}
	return stdout.Bytes(), nil
}

// command is one runsc invocation under ctx. It runs in its own process
// group: a Ctrl-C in the terminal of `nestbox up` (SIGINT to the
// foreground group) must not kill a runsc run or delete half-way; the
// agent stops on its own terms. A child of runsc that keeps the output
// pipes open must not hold Wait past a kill.
func (d *Driver) command(ctx context.Context, args []string, stdout, stderr io.Writer) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.cfg.Runsc, args...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

func (d *Driver) globalFlags() []string {
	return append([]string{
		"--root=" + d.cfg.Root,
		"--platform=" + d.cfg.Platform,
		// The rootfs is a host overlayfs: writes must reach its upper
		// layer, not a gVisor-internal filestore.
		"--overlay2=none",
		// Setuid binaries (sudo, su, ping) work as on a normal machine:
		// the sandbox's users are the sandbox's business. gVisor ignores
		// the setuid bit unless told otherwise.
		"--allow-suid",
	}, d.cfg.ExtraFlags...)
}

// runscError is a failed runsc command with its stderr.
type runscError struct {
	args []string
	msg  string
}

func (e *runscError) Error() string {
	return fmt.Sprintf("runsc %s: %s", e.args[0], e.msg)
}

func isNotExist(err error) bool {
	var re *runscError
	return errors.As(err, &re) && (strings.Contains(re.msg, "does not exist") || strings.Contains(re.msg, "not found"))
}

// bundleDir is where a sandbox's OCI bundle lives.
func bundleDir(spec driver.Spec) string { return filepath.Join(spec.Dir, "bundle") }

// Create writes the bundle and starts the sandbox detached. envd's output
// goes to <log dir>/console.log, runsc's own log to <log dir>/runsc.log
// (warnings only: no --debug-log, whose size the tenant would control).
func (d *Driver) Create(ctx context.Context, spec driver.Spec) error {
	if err := validate(spec); err != nil {
		return err
	}
	if st, err := d.State(ctx, spec.ID); err != nil {
		return fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	} else if st != driver.StateNotFound {
		return errdefs.AlreadyExists("sandbox %s exists", spec.ID)
	}
	if err := d.writeBundle(spec); err != nil {
		return fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	if err := d.start(ctx, spec, "run", "-detach", "-bundle", bundleDir(spec), spec.ID); err != nil {
		// A failed run may leave a created container behind.
		d.Destroy(context.WithoutCancel(ctx), spec.ID)
		return fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	d.addRuntimeHeadroom(spec)
	return nil
}

// addRuntimeHeadroom raises the host memory limit of a sandbox that has
// just started above what its guest was told it has. runsc gives the
// sentry the cgroup's limit as the guest's total memory when it boots, and
// everything of the sandbox on the host is charged to that cgroup: the
// sentry's own structures, the gofer, the page cache of its files and, in
// a checkpoint, the buffers that write the image. Without room for them a
// guest near its memory size gets the whole sandbox killed by the host's
// OOM killer (seen: a checkpoint of a 96 MiB sandbox after 967 pause and
// resume cycles). The guest keeps seeing its size; the host lets the
// runtime use RuntimeHeadroom more. Failing to raise it leaves the
// sandbox as it was, with a warning.
func (d *Driver) addRuntimeHeadroom(spec driver.Spec) {
	limit := memoryLimit(spec) + RuntimeHeadroom(memoryLimit(spec))
	if err := setMemoryLimit(d.cfg.CgroupParent+"/"+spec.ID, limit); err != nil {
		d.log.Warn("cannot give the runtime memory headroom", "sandbox", spec.ID, "err", err)
	}
}

// start runs a detached runsc command whose sandbox inherits console.log as
// stdout and stderr.
func (d *Driver) start(ctx context.Context, spec driver.Spec, args ...string) error {
	logDir := spec.LogDir
	if logDir == "" {
		logDir = spec.Dir
	}
	console, err := os.OpenFile(filepath.Join(logDir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer console.Close()
	runscLog := filepath.Join(logDir, "runsc.log")
	full := append(d.globalFlags(), "--log="+runscLog)
	if spec.NetNS == "" {
		// A fresh network namespace has loopback down; with no namespace
		// given, let gVisor make a loopback-only network itself.
		full = append(full, "--network=none")
	}
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	d.count(args[0])
	cmd := d.command(ctx, full, console, console)
	if err := cmd.Run(); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("runsc %s: killed after %s: %w", args[0], d.cfg.StartTimeout, errdefs.ErrDeadlineExceeded)
		}
		return fmt.Errorf("runsc %s: %w (see %s)", args[0], err, runscLog)
	}
	return nil
}

func validate(spec driver.Spec) error {
	switch {
	case spec.ID == "" || strings.ContainsAny(spec.ID, "/ \x00"):
		return errdefs.Invalid("invalid sandbox id %q", spec.ID)
	case spec.Dir == "" || !filepath.IsAbs(spec.Dir):
		return errdefs.Invalid("sandbox %s: working directory must be absolute", spec.ID)
	case spec.Rootfs == "" || !filepath.IsAbs(spec.Rootfs):
		return errdefs.Invalid("sandbox %s: rootfs must be absolute", spec.ID)
	case len(spec.Args) == 0:
		return errdefs.Invalid("sandbox %s: no first process", spec.ID)
	}
	return nil
}

// Destroy kills and deletes the sandbox. Unknown IDs are fine.
func (d *Driver) Destroy(ctx context.Context, id string) error {
	if _, err := d.runsc(ctx, "delete", "-force", id); err != nil && !isNotExist(err) {
		return fmt.Errorf("destroy sandbox %s: %w", id, err)
	}
	if err := removeCgroups(d.cfg.CgroupParent + "/" + id); err != nil {
		return fmt.Errorf("destroy sandbox %s: %w", id, err)
	}
	return nil
}

// runscState is the part of `runsc state` we read.
type runscState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

func (d *Driver) state(ctx context.Context, id string) (runscState, error) {
	out, err := d.runsc(ctx, "state", id)
	if err != nil {
		return runscState{}, err
	}
	var st runscState
	if err := json.Unmarshal(out, &st); err != nil {
		return runscState{}, fmt.Errorf("parse runsc state: %w", err)
	}
	if st.ID != id { // runsc matches IDs by prefix
		return runscState{}, &runscError{args: []string{"state"}, msg: "container " + id + " does not exist"}
	}
	return st, nil
}

// State maps runsc's status onto driver states.
func (d *Driver) State(ctx context.Context, id string) (driver.State, error) {
	st, err := d.state(ctx, id)
	if isNotExist(err) {
		return driver.StateNotFound, nil
	}
	if err != nil {
		return "", fmt.Errorf("state of sandbox %s: %w", id, err)
	}
	switch st.Status {
	case "running", "created":
		return driver.StateRunning, nil
	case "paused":
		return driver.StatePaused, nil
	default:
		return driver.StateStopped, nil
	}
}

// List returns the IDs in runsc's state directory.
func (d *Driver) List(ctx context.Context) ([]string, error) {
	out, err := d.runsc(ctx, "list", "-format=json")
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	var states []runscState
	if err := json.Unmarshal(bytes.TrimSpace(out), &states); err != nil && len(bytes.TrimSpace(out)) > 0 && string(bytes.TrimSpace(out)) != "null" {
		return nil, fmt.Errorf("parse runsc list: %w", err)
	}
	ids := make([]string, 0, len(states))
	for _, s := range states {
		ids = append(ids, s.ID)
	}
	return ids, nil
}

// Pause stops the sandbox's execution with runsc pause (never the cgroup
// freezer: repeated freezes corrupt systrap's stub processes).
func (d *Driver) Pause(ctx context.Context, id string) error {
	if _, err := d.runsc(ctx, "pause", id); err != nil {
		if isNotExist(err) {
			return errdefs.NotFound("sandbox %s not found", id)
		}
		return fmt.Errorf("pause sandbox %s: %w", id, err)
	}
	return nil
}

// Resume continues a paused sandbox.
func (d *Driver) Resume(ctx context.Context, id string) error {
	if _, err := d.runsc(ctx, "resume", id); err != nil {
		if isNotExist(err) {
			return errdefs.NotFound("sandbox %s not found", id)
		}
		return fmt.Errorf("resume sandbox %s: %w", id, err)
	}
	return nil
}

// Checkpoint writes the sandbox's memory image to imageDir and removes the
// sandbox. runsc checkpoint returns before the sandbox process has exited:
// Checkpoint waits for that exit (a few milliseconds, on a pidfd), after
// which nothing of the sandbox runs or writes any more, then deletes the
// container with -force. A plain delete would refuse for as long as the
// dead process is not reaped (runsc's state says "running" until then),
// which is up to the host's init, and was seen to take 1.2–2.5 s.
func (d *Driver) Checkpoint(ctx context.Context, id, imageDir string) error {
	st, err := d.state(ctx, id)
	if err != nil {
		if isNotExist(err) {
			return errdefs.NotFound("sandbox %s not found", id)
		}
		return fmt.Errorf("checkpoint sandbox %s: %w", id, err)
	}
	if st.Status != "running" {
		// runsc checkpoint of a paused sandbox never returns.
		return errdefs.Conflict("checkpoint sandbox %s: it is %s", id, st.Status)
	}
	// A pidfd of the sandbox process, taken before the checkpoint, tells
	// when it has exited, zombie or reaped, without asking runsc.
	exited := pidExit(st.Pid)
	defer exited.close()
	if err := os.MkdirAll(imageDir, 0o700); err != nil {
		return fmt.Errorf("checkpoint sandbox %s: %w", id, err)
	}
	// Writing the memory image takes ~2 ms per MiB with -direct: the
	// start bound.
	if _, err := d.runscWithin(ctx, d.cfg.StartTimeout, "checkpoint", "-direct", "-image-path="+imageDir, id); err != nil {
		return fmt.Errorf("checkpoint sandbox %s: %w", id, err)
	}
	if exited.valid() {
		if err := exited.wait(ctx); err != nil {
			return fmt.Errorf("checkpoint sandbox %s: wait for exit: %w", id, err)
		}
	} else if err := d.waitStopped(ctx, id); err != nil {
		// No pidfd (the process was gone already, or an old kernel):
		// runsc's state says "stopped" once the process is reaped.
		return fmt.Errorf("checkpoint sandbox %s: wait for exit: %w", id, err)
	}
	var derr error
	for attempt := 0; attempt < 20; attempt++ {
		_, derr = d.runsc(ctx, "delete", "-force", id)
		if derr == nil || isNotExist(derr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("checkpoint sandbox %s: delete: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("checkpoint sandbox %s: delete: %w", id, derr)
}

// Restore starts the sandbox again from imageDir with the same bundle.
func (d *Driver) Restore(ctx context.Context, spec driver.Spec, imageDir string) error {
	if err := validate(spec); err != nil {
		return err
	}
	if err := d.writeBundle(spec); err != nil {
		return fmt.Errorf("restore sandbox %s: %w", spec.ID, err)
	}
	load := "-direct"
	if d.cfg.LazyRestore {
		load = "-background"
	}
	if err := d.start(ctx, spec, "restore", "-detach", load, "-image-path="+imageDir, "-bundle", bundleDir(spec), spec.ID); err != nil {
		d.Destroy(context.WithoutCancel(ctx), spec.ID)
		return fmt.Errorf("restore sandbox %s: %w", spec.ID, err)
	}
	d.addRuntimeHeadroom(spec)
	return nil
}

// waitStopped polls runsc until the sandbox is no longer running.
func (d *Driver) waitStopped(ctx context.Context, id string) error {
	for {
		st, err := d.state(ctx, id)
		if isNotExist(err) || (err == nil && st.Status == "stopped") {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}
