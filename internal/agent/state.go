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
	ID     string `json:"id"`
	Status status `json:"status"`
	// Config is the resolved SandboxConfig in protobuf's JSON form.
	Config      json.RawMessage  `json:"config"`
	Template    string           `json:"template_path,omitempty"`
	EnvdVersion string           `json:"envd_version,omitempty"`
	Network     *network.Sandbox `json:"network,omitempty"`
	Rootfs      *rootfs.Layer    `json:"rootfs,omitempty"`
	StartedAt   time.Time        `json:"started_at,omitzero"`
	EndAt       time.Time        `json:"end_at,omitzero"`
}

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
		ID:          sb.id,
		Status:      sb.status,
		Config:      cfg,
		Template:    sb.tplPath,
		EnvdVersion: sb.envdVersion,
		StartedAt:   sb.startedAt,
		EndAt:       sb.endAt,
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
		dir:         dir,
		log:         a.log.With("sandbox", rec.ID),
		cfg:         cfg,
		tplPath:     rec.Template,
		envdVersion: rec.EnvdVersion,
		startedAt:   rec.StartedAt,
		status:      rec.Status,
		endAt:       rec.EndAt,
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
	st, endAt := sb.status, sb.endAt
	a.mu.Unlock()
	out := &agentpb.Sandbox{
		Id:          sb.id,
		Config:      publicConfig(sb.cfg),
		State:       agentpb.SandboxState_SANDBOX_STATE_RUNNING,
		Address:     sb.net.GuestIP.String(),
		EnvdVersion: sb.envdVersion,
	}
	if st != statusRunning {
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
