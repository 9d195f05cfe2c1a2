package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/network"
)

// recover rebuilds the agent's table from the state files of a previous
// run. A sandbox recorded as running whose driver still runs it is adopted:
// its network slot is taken again, its timeout restored and its proxy works.
// Everything else is removed: sandboxes that stopped while the agent was
// down (reported as crashed), creates the previous agent did not finish,
// sandbox directories without a state file, mounts under the sandbox
// directories that no sandbox owns, runtime containers and network
// namespaces of this agent that no state file names.
func (a *Agent) recover(ctx context.Context) error {
	entries, err := os.ReadDir(a.sandboxesDir())
	if err != nil {
		return err
	}
	// First let the runtime commands a killed predecessor left running
	// end: until then, what is on disk may still change.
	if s, ok := a.driver.(driver.Settler); ok {
		if err := s.Settle(ctx); err != nil {
			return err
		}
	}
	if err := a.removeForkLeftovers(); err != nil {
		return err
	}
	if err := a.recoverSnapshots(); err != nil {
		return err
	}
	// dead are the sandboxes to remove; started says whether the runtime
	// still knew them (so "created" may have been reported).
	var dead []*sandbox
	started := map[*sandbox]bool{}
	foreign := map[string]bool{}
	for _, e := range entries {
		dir := filepath.Join(a.sandboxesDir(), e.Name())
		if !e.IsDir() {
			os.Remove(dir)
			continue
		}
		rec, err := readState(dir)
		if err != nil {
			a.log.Warn("removing sandbox directory without a usable state file", "dir", dir, "err", err)
			a.removeDir(dir)
			continue
		}
		sb, err := a.sandboxFromRecord(dir, rec)
		if err != nil || rec.runtimeID() != e.Name() {
			a.log.Warn("removing sandbox directory with a broken state file", "dir", dir, "err", err)
			a.removeDir(dir)
			continue
		}
		if rec.Version > stateVersion || (rec.Driver != "" && rec.Driver != a.driver.Name()) {
			// Not ours to judge: a newer agent's file, or another driver's
			// sandbox. Left alone, files and runtime.
			sb.log.Error("leaving alone a sandbox this agent cannot manage", "state_version", rec.Version, "driver", rec.Driver)
			foreign[sb.rid] = true
			continue
		}
		st, err := a.driver.State(ctx, sb.rid)
		if err != nil {
			// Unknown is not dead: adopt it, and let the crash monitor
			// decide once the driver answers.
			sb.log.Warn("cannot read the runtime state of a sandbox; adopting it", "err", err)
			st = driver.StateRunning
		}
		if handled, err := a.recoverPause(ctx, sb, st); handled {
			if err != nil {
				sb.log.Error("recover a paused sandbox", "err", err)
			}
			continue
		}
		if rec.Status == statusRunning {
			// A resume that crashed after recording running but before
			// removing the snapshot it used; a create from a snapshot,
			// before removing the links of its images.
			os.RemoveAll(snapshotDir(sb))
			os.RemoveAll(filepath.Join(sb.dir, restoreDirName))
		}
		alive := st == driver.StateRunning || st == driver.StatePaused
		if rec.Status == statusPooled && st == driver.StateRunning {
			// A warm pool's sandbox: kept for the pools, which remove it
			// if no pool wants it any more.
			if err := a.net.Adopt(sb.net); err == nil {
				sb.status, sb.ready = statusPooled, true
				a.sandboxes[sb.id] = sb
				sb.log.Info("adopted pooled sandbox")
				continue
			}
			sb.net.Slot = -1
		}
		if rec.Status != statusRunning || !alive {
			dead = append(dead, sb)
			started[sb] = st != driver.StateNotFound
			continue
		}
		if err := a.net.Adopt(sb.net); err != nil {
			sb.log.Error("cannot adopt the network of a running sandbox; removing it", "err", err)
			sb.net.Slot = -1 // the slot belongs to another sandbox
			dead = append(dead, sb)
			started[sb] = true
			continue
		}
		sb.status = statusRunning
		sb.proxy = newSandboxProxy(a, sb)
		a.sandboxes[sb.id] = sb
		sb.log.Info("adopted sandbox", "end_at", sb.endAt, "address", sb.net.Addr())
	}

	used := map[int]bool{}
	for _, sb := range a.sandboxes {
		if sb.net.ID != "" {
			used[sb.net.Slot] = true
		}
	}
	for _, sb := range dead {
		if sb.net.ID != "" && used[sb.net.Slot] {
			// A stale record: the slot is a live sandbox's now. Remove
			// only this sandbox's namespace, found by its name.
			sb.net.Slot = -1
		}
		// Report it unless the control plane never heard of it.
		report := !sb.pooled && (sb.status == statusRunning || started[sb])
		sb.log.Info("removing what is left of a sandbox that no longer runs", "recorded_status", sb.status)
		if err := a.teardown(ctx, sb); err != nil {
			// Keep it registered (not running) so that DestroySandbox
			// retries; the next restart would too.
			sb.log.Error("cleanup of a dead sandbox", "err", err)
			sb.status = statusStopping
			a.sandboxes[sb.id] = sb
			continue
		}
		if report {
			a.emit(sb.id, EventCrashed)
		}
	}

	// Runtime containers that no state file names. The runtime knows
	// sandboxes by their runtime names.
	known := map[string]bool{}
	for _, sb := range a.sandboxes {
		known[sb.rid] = true
	}
	ids, err := a.driver.List(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !known[id] && !foreign[id] {
			a.log.Info("removing a runtime container without a sandbox", "sandbox", id)
			if err := a.driver.Destroy(ctx, id); err != nil {
				a.log.Error("remove leftover container", "sandbox", id, "err", err)
			}
		}
	}
	// Network namespaces of this agent that no state file names: a create
	// died between making the network and recording it. The slot is not
	// known, so only the namespace (and with it the veth pair) goes; the
	// slot's egress chain, if any, is flushed and reused when the slot is
	// next allocated.
	leftovers, err := a.net.Leftovers()
	if err != nil {
		return err
	}
	for _, id := range leftovers {
		if !known[id] && !foreign[id] {
			a.log.Info("removing a network namespace without a sandbox", "sandbox", id)
			if err := a.net.Teardown(ctx, network.Sandbox{ID: id, Slot: -1}); err != nil {
				a.log.Error("remove leftover network namespace", "sandbox", id, "err", err)
			}
		}
	}
	return nil
}

// teardown removes everything of sb: the runtime's sandbox, the writable
// layer, the network, the state file and the directory. Every step is
// idempotent; it stops at the first failure so that the state file stays
// for a later retry. The caller holds sb.op (or is recover, alone).
func (a *Agent) teardown(ctx context.Context, sb *sandbox) error {
	if err := a.driver.Destroy(ctx, sb.rid); err != nil {
		return err
	}
	if sb.layer.Root != "" {
		if err := a.layers.Unmount(ctx, sb.layer); err != nil {
			return err
		}
	}
	// Anything else still mounted in the directory (a crash in the middle
	// of mounting the layer).
	if err := unmountUnder(sb.dir); err != nil {
		return err
	}
	if sb.net.ID != "" && !sb.netReleased {
		if err := a.net.Teardown(ctx, sb.net); err != nil {
			return err
		}
		// The slot is free and a new sandbox may take it at once: a retry
		// of this teardown, now or after a restart, must not touch it.
		sb.netReleased = true
		if err := a.writeState(sb); err != nil {
			return err
		}
	}
	// The state file goes last: as long as anything else is left, it
	// says what.
	entries, err := os.ReadDir(sb.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if e.Name() != stateFile {
			if err := os.RemoveAll(filepath.Join(sb.dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := removeState(sb.dir); err != nil {
		return err
	}
	if err := os.Remove(sb.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeDir removes a sandbox directory that has no usable state file,
// unmounting whatever is mounted in it first.
func (a *Agent) removeDir(dir string) {
	if err := unmountUnder(dir); err != nil {
		a.log.Error("unmount leftovers", "dir", dir, "err", err)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		a.log.Error("remove leftover directory", "dir", dir, "err", err)
	}
}

// unmountUnder unmounts every mount point below dir, deepest first. Loop
// devices made by mount(8) are freed with their mounts.
func unmountUnder(dir string) error {
	points, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, 0); err != nil {
			if err = unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points strictly below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	prefix := filepath.Clean(dir) + "/"
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			p := unescapeMountinfo(f[4])
			if strings.HasPrefix(p, prefix) && !slices.Contains(points, p) {
				points = append(points, p)
			}
		}
	}
	slices.SortFunc(points, func(x, y string) int { return len(y) - len(x) })
	return points, nil
}

// unescapeMountinfo undoes mountinfo's octal escapes of space, tab, newline
// and backslash.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}
