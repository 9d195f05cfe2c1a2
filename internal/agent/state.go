package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/network"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/rootfs"
)

// stateFile is the name of a sandbox's state file in its directory.
const stateFile = "state.json"

// record is the content of a sandbox's state file: everything a restarted
// agent needs to adopt the sandbox or to remove what is left of it. It holds
// the access token (envd keeps requiring it after a restart and GetSandbox
// reports it), so the file is readable by root only.
type record struct {
	// Version is the format of the file: stateVersion when written by
	// this agent; 0 is the first format (no driver, no pause fields),
	// read the same way. A file of a newer version is left alone.
	Version int `json:"version,omitempty"`
	// Driver is the name of the driver that runs the sandbox; "" in
	// files of version 0 (gVisor, the only driver then).
	Driver string `json:"driver,omitempty"`
	ID     string `json:"id"`
	// RuntimeID is the sandbox's runtime name (sandbox.rid) when it is
	// not ID: a sandbox taken from a warm pool. It names the directory.
	RuntimeID string `json:"runtime_id,omitempty"`
	Status    status `json:"status"`
	// Config is the resolved SandboxConfig in protobuf's JSON form.
	Config      json.RawMessage  `json:"config"`
	Template    string           `json:"template_path,omitempty"`
	EnvdVersion string           `json:"envd_version,omitempty"`
	Network     *network.Sandbox `json:"network,omitempty"`
	Rootfs      *rootfs.Layer    `json:"rootfs,omitempty"`
	StartedAt   time.Time        `json:"started_at,omitzero"`
	EndAt       time.Time        `json:"end_at,omitzero"`
	// Set while paused: when, the tier ("memory" or "disk"), whether
	// without memory; Error says why the status is "error". The snapshot
	// itself is described by snapshot/manifest.json in the directory.
	PausedAt       time.Time `json:"paused_at,omitzero"`
	PauseTier      string    `json:"pause_tier,omitempty"`
	FilesystemOnly bool      `json:"filesystem_only,omitempty"`
	Error          string    `json:"error,omitempty"`
}

// stateVersion is the format this agent writes: 1 added the driver and
// the pause fields.
const stateVersion = 1

// writeState writes sb's state file atomically (a temporary file renamed
// over the old one). It does not fsync: the file guards against the agent
// crashing, and a machine that loses power loses its sandboxes too, which a
// restarted agent cleans up from whatever version of the file survived.
// The caller holds sb.op.
func (a *Agent) writeState(sb *sandbox) error {
	cfg, err := protojson.Marshal(sb.cfg)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	a.mu.Lock()
	rec := record{
		Version:        stateVersion,
		Driver:         a.driver.Name(),
		PausedAt:       sb.pausedAt,
		PauseTier:      sb.pauseTier,
		FilesystemOnly: sb.fsOnly,
		Error:          sb.errMsg,
		ID:             sb.id,
		RuntimeID:      sb.runtimeIDField(),
		Status:         sb.status,
		Config:         cfg,
		Template:       sb.tplPath,
		EnvdVersion:    sb.envdVersion,
		StartedAt:      sb.startedAt,
		EndAt:          sb.endAt,
	}
	a.mu.Unlock()
	if sb.net.ID != "" && !sb.netReleased {
		n := sb.net
		rec.Network = &n
	}
	if sb.layer.Root != "" {
		l := sb.layer
		rec.Rootfs = &l
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	name := filepath.Join(sb.dir, stateFile)
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// runtimeID is the runtime name the record gives its sandbox.
func (r record) runtimeID() string {
	if r.RuntimeID != "" {
		return r.RuntimeID
	}
	return r.ID
}

// runtimeIDField is what the state file records as the runtime ID: nothing
// when it is the sandbox's ID.
func (sb *sandbox) runtimeIDField() string {
	if sb.rid == sb.id {
		return ""
	}
	return sb.rid
}

// readState reads the state file in dir.
func readState(dir string) (record, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return record{}, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return record{}, fmt.Errorf("state file %s: %w", filepath.Join(dir, stateFile), err)
	}
	return rec, nil
}

// removeState removes the state file in dir; a missing one is fine.
func removeState(dir string) error {
	if err := os.Remove(filepath.Join(dir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// sandboxFromRecord rebuilds the agent's view of a sandbox from its state
// file.
func (a *Agent) sandboxFromRecord(dir string, rec record) (*sandbox, error) {
	cfg := &agentpb.SandboxConfig{}
	if err := protojson.Unmarshal(rec.Config, cfg); err != nil {
		return nil, fmt.Errorf("state of %s: config: %w", rec.ID, err)
	}
	sb := &sandbox{
		id:          rec.ID,
		rid:         rec.runtimeID(),
		dir:         dir,
		log:         a.log.With("sandbox", rec.ID),
		cfg:         cfg,
		tplPath:     rec.Template,
		envdVersion: rec.EnvdVersion,
		startedAt:   rec.StartedAt,
		status:      rec.Status,
		endAt:       rec.EndAt,
		pausedAt:    rec.PausedAt,
		pauseTier:   rec.PauseTier,
		fsOnly:      rec.FilesystemOnly,
		errMsg:      rec.Error,
		pooled:      rec.Status == statusPooled,
	}
	if rec.Network != nil {
		sb.net = *rec.Network
	}
	if rec.Rootfs != nil {
		sb.layer = *rec.Rootfs
	}
	return sb, nil
}

// toProto describes sb for the API.
func (a *Agent) toProto(sb *sandbox) *agentpb.Sandbox {
	a.mu.Lock()
	st, endAt, pausedAt, tier, fsOnly, errMsg, cfg, guest := sb.status, sb.endAt, sb.pausedAt, sb.pauseTier, sb.fsOnly, sb.errMsg, sb.cfg, sb.net.Addr()
	a.mu.Unlock()
	out := &agentpb.Sandbox{
		Id:          sb.id,
		Config:      publicConfig(cfg),
		State:       agentpb.SandboxState_SANDBOX_STATE_RUNNING,
		Address:     guest.String(),
		EnvdVersion: sb.envdVersion,
	}
	switch st {
	case statusRunning, statusPausing:
		// A pausing sandbox runs until its checkpoint; a failed pause
		// leaves it running.
	case statusPaused, statusResuming:
		// A resuming sandbox is paused until its resume has finished; a
		// failed resume leaves it paused.
		out.State = agentpb.SandboxState_SANDBOX_STATE_PAUSED
		out.PauseTier = tier
		out.FilesystemOnly = fsOnly
		if !pausedAt.IsZero() {
			out.PausedAt = timestamppb.New(pausedAt)
		}
		endAt = time.Time{} // frozen: no end of life while paused
	case statusError:
		out.State = agentpb.SandboxState_SANDBOX_STATE_ERROR
		out.Error = errMsg
		endAt = time.Time{}
	default:
		out.State = agentpb.SandboxState_SANDBOX_STATE_STOPPED
	}
	if !sb.startedAt.IsZero() {
		out.StartedAt = timestamppb.New(sb.startedAt)
	}
	if !endAt.IsZero() {
		out.EndAt = timestamppb.New(endAt)
	}
	return out
}

// publicConfig is cfg without its secrets (the env vars' values and envd's
// access token): answers of the API never carry them; the control plane
// has them already and nothing else needs them.
func publicConfig(cfg *agentpb.SandboxConfig) *agentpb.SandboxConfig {
	if cfg == nil {
		return nil
	}
	out := proto.Clone(cfg).(*agentpb.SandboxConfig)
	out.EnvVars = nil
	out.AccessToken = ""
	return out
}
