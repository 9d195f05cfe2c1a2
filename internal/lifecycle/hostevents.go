package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// HostEvent is what a host agent reports about one of its sandboxes
// (POST /v1/hosts/sandbox-events); the JSON shape is the agent's. The HTTP
// layer sets HostID to the host whose token authenticated the event.
type HostEvent struct {
	HostID    string `json:"host_id,omitempty"`
	SandboxID string `json:"sandbox_id"`
	Type      string `json:"type"`
	// Reason says why, for the types that have several: "timeout" for
	// an automatic pause.
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Event types a host agent sends.
const (
	hostCreated  = "created"
	hostRunning  = "running"
	hostStopped  = "stopped"
	hostTimedOut = "timed_out"
	hostCrashed  = "crashed"
	// hostPaused: the agent paused the sandbox by itself (auto-pause at
	// its timeout).
	hostPaused = "paused"
)

// HandleHostEvent applies an agent's event to the store at once, rather
// than at the next reconcile. Events about unknown sandboxes and events
// that no longer apply are ignored. An event whose HostID is set may only
// be about a capsule on that host: one about another host's capsule is
// errdefs.ErrPermission and changes nothing.
func (s *Service) HandleHostEvent(ctx context.Context, ev HostEvent) error {
	var (
		from []nestbox.Status
		u    = store.StatusUpdate{At: ev.At.UTC()}
	)
	if u.At.IsZero() {
		u.At = s.cfg.Now().UTC()
	}
	switch ev.Type {
	case hostCreated, hostRunning:
		return nil // the create's own answer records these
	case hostStopped:
		from, u.To, u.Reason = []nestbox.Status{nestbox.StatusRunning, nestbox.StatusPaused, nestbox.StatusStopping, nestbox.StatusMissing}, nestbox.StatusStopped, "the host destroyed the sandbox"
	case hostPaused:
		from, u.To, u.Reason = []nestbox.Status{nestbox.StatusRunning, nestbox.StatusMissing}, nestbox.StatusPaused, "paused by the host"
		if ev.Reason != "" {
			u.Reason = "paused by the host: " + ev.Reason
		}
	case hostTimedOut:
		from, u.To, u.Reason = []nestbox.Status{nestbox.StatusRunning, nestbox.StatusStopping}, nestbox.StatusStopped, "timed out"
	case hostCrashed:
		from, u.To, u.Reason = []nestbox.Status{nestbox.StatusRunning}, nestbox.StatusError, "the sandbox stopped unexpectedly"
	default:
		return errdefs.Invalid("unknown event type %q", ev.Type)
	}
	if len(ev.SandboxID) != capsulespec.IDLength {
		return errdefs.Invalid("sandbox_id %q is not a capsule ID", ev.SandboxID)
	}
	if ev.HostID != "" || ev.Type == hostPaused {
		c, err := s.store.GetCapsule(ctx, ev.SandboxID)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("host event for %s: %w", ev.SandboxID, err)
		}
		if ev.HostID != "" && c.HostID != ev.HostID {
			return errdefs.Permission("capsule %s is not on host %s", ev.SandboxID, ev.HostID)
		}
		if u.To == nestbox.StatusPaused {
			// The lifetime ran out: nothing is left to freeze. Memory as
			// the capsule was created to pause.
			u.Pause = &store.Pause{At: u.At, Memory: c.AutoPauseMemory}
		}
	}
	if u.To.Final() {
		u.StoppedAt = u.At
	}
	_, err := s.transition(ctx, ev.SandboxID, from, u)
	if errors.Is(err, errdefs.ErrConflict) || errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	return err
}
