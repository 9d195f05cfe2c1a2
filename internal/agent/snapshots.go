package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
	"nestbox.dev/internal/rootfs"
)

// The snapshots a host keeps (CreateSnapshot) live under
// <data>/snapshots/<snapshot id>/, each owned by the agent until
// DeleteSnapshot removes it:
//
//	images/        the source's checkpoint (hard links of the files runsc wrote)
//	manifest.json  their sizes and checksums (the pause's manifest format)
//	upper.img      a sparse copy of the source's writable layer
//	snapshot.json  the metadata (snapshotMeta), 0600: it holds the source's secrets
//
// A snapshot is made in <data>/snapshots/.tmp-<id>-<random> and renamed
// into place once whole (metadata last, fsynced), so a directory with a
// snapshot's name is a complete snapshot; anything whose name starts with
// a dot is a temporary a restarted agent removes (an unfinished create,
// or a delete's directory renamed away before its removal).
//
// Who may read or remove a snapshot is decided by snapMu: a restore holds
// it to read while it copies the layer and links the images into its own
// directory (each restore then works from its own copies, so many run
// from one snapshot at once); the commit of a create and a delete hold it
// to write. A delete therefore waits for the copies in progress, never
// for whole restores, and a snapshot is never removed under a copy.
const (
	snapshotsDirName = "snapshots"
	snapshotMetaName = "snapshot.json"
	// snapshotMetaVersion is the format of snapshot.json this agent
	// writes; a newer one is left alone.
	snapshotMetaVersion = 1
	// restoreDirName is the directory in a sandbox's own directory that
	// holds the links of a snapshot's images while the sandbox is
	// restored from them; removed once it runs.
	restoreDirName = "from-snapshot"
	// DefaultMaxSnapshots is Config.MaxSnapshots' default.
	DefaultMaxSnapshots = 64
)

func (a *Agent) snapshotsDir() string          { return filepath.Join(a.cfg.DataDir, snapshotsDirName) }
func (a *Agent) snapshotPath(id string) string { return filepath.Join(a.snapshotsDir(), id) }

// snapshotMeta is the content of snapshot.json: what a restore needs
// besides the images and the layer, and what ListSnapshots reports. It
// holds the source's resolved config with its secrets (envd's token,
// which the restore's /init presents, and the env vars, which the image
// holds anyway); no answer of the API carries them.
type snapshotMeta struct {
	Version   int       `json:"version"`
	ID        string    `json:"id"`
	SourceID  string    `json:"source_id"`
	Driver    string    `json:"driver"`
	CreatedAt time.Time `json:"created_at"`
	// Config is the source's resolved SandboxConfig (protobuf JSON):
	// template, sizes, egress options, token, env vars, defaults.
	Config json.RawMessage `json:"config"`
	// Template is the template version (rootfs directory) the layer is
	// over; the template store keeps it while the snapshot exists.
	Template    string `json:"template_path"`
	EnvdVersion string `json:"envd_version,omitempty"`
	// LayerImage is the name of the layer copy in the directory;
	// DiskBytes its size.
	LayerImage string `json:"layer_image"`
	DiskBytes  int64  `json:"disk_bytes"`
	// LayerCRC32C is rootfs.Checksum of the layer copy: a restore checks
	// its own copy against it. Empty in snapshots of older agents, which
	// are restored unchecked.
	LayerCRC32C string `json:"layer_crc32c,omitempty"`
}

// config decodes m's source config.
func (m snapshotMeta) config() (*agentpb.SandboxConfig, error) {
	cfg := &agentpb.SandboxConfig{}
	if err := protojson.Unmarshal(m.Config, cfg); err != nil {
		return nil, fmt.Errorf("snapshot %s: config: %w", m.ID, err)
	}
	return cfg, nil
}

// origin is the snapshot's layer copy in dir, as a restore copies it.
func (m snapshotMeta) origin(dir string) origin {
	return origin{
		layer: rootfs.Layer{Root: filepath.Join(dir, "rootfs"), Image: filepath.Join(dir, m.LayerImage),
			UpperMount: filepath.Join(dir, "upper"), Lower: m.Template, SizeBytes: m.DiskBytes},
		tplPath:     m.Template,
		envdVersion: m.EnvdVersion,
	}
}

// readSnapshotMeta reads the metadata of the snapshot in dir. A missing
// file is errdefs.ErrNotFound.
func readSnapshotMeta(dir string) (snapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, snapshotMetaName))
	if errors.Is(err, os.ErrNotExist) {
		return snapshotMeta{}, errdefs.NotFound("snapshot %s not found", filepath.Base(dir))
	}
	if err != nil {
		return snapshotMeta{}, err
	}
	var m snapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return snapshotMeta{}, errdefs.DataLoss("snapshot %s: metadata: %v", filepath.Base(dir), err)
	}
	if m.Version > snapshotMetaVersion {
		return snapshotMeta{}, errdefs.Conflict("snapshot %s has metadata of version %d; this agent reads up to %d", filepath.Base(dir), m.Version, snapshotMetaVersion)
	}
	if m.ID != filepath.Base(dir) || m.LayerImage == "" || strings.Contains(m.LayerImage, "/") {
		return snapshotMeta{}, errdefs.DataLoss("snapshot %s: metadata names snapshot %q and layer %q", filepath.Base(dir), m.ID, m.LayerImage)
	}
	return m, nil
}

// lookupSnapshot reads the metadata of snapshot id: errdefs.ErrInvalid
// for a malformed ID, errdefs.ErrNotFound for an unknown one.
func (a *Agent) lookupSnapshot(id string) (snapshotMeta, error) {
	if !capsulespec.ValidID(id) {
		return snapshotMeta{}, errdefs.Invalid("snapshot id %q must be %d characters [a-z0-9]", id, capsulespec.IDLength)
	}
	return readSnapshotMeta(a.snapshotPath(id))
}

// snapshotIDs lists the names of the complete snapshots on disk, sorted.
func (a *Agent) snapshotIDs() ([]string, error) {
	entries, err := os.ReadDir(a.snapshotsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			ids = append(ids, e.Name())
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// listSnapshots describes the snapshots this host keeps. One whose
// metadata cannot be read is logged and left out.
func (a *Agent) listSnapshots() ([]*agentpb.Snapshot, error) {
	ids, err := a.snapshotIDs()
	if err != nil {
		return nil, err
	}
	out := make([]*agentpb.Snapshot, 0, len(ids))
	for _, id := range ids {
		s, err := a.describeSnapshot(id)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			a.log.Error("unreadable snapshot left out of the list", "snapshot", id, "err", err)
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// describeSnapshot is snapshot id for the API: no secrets, and the bytes
// it takes on disk.
func (a *Agent) describeSnapshot(id string) (*agentpb.Snapshot, error) {
	dir := a.snapshotPath(id)
	m, err := readSnapshotMeta(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := m.config()
	if err != nil {
		return nil, err
	}
	return &agentpb.Snapshot{
		Id:          m.ID,
		SandboxId:   m.SourceID,
		Template:    cfg.Template,
		Vcpus:       cfg.Vcpus,
		MemoryMb:    cfg.MemoryMb,
		DiskBytes:   m.DiskBytes,
		SizeBytes:   int64(diskBlocks(dir)),
		CreatedAt:   timestamppb.New(m.CreatedAt),
		EnvdVersion: m.EnvdVersion,
	}, nil
}

// diskBlocks is the bytes the files under dir occupy on disk (allocated
// blocks: a sparse layer counts what it holds, not its size).
func diskBlocks(dir string) uint64 {
	var n uint64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(path, &st) == nil {
			n += uint64(st.Blocks) * 512
		}
		return nil
	})
	return n
}

// snapshotBytes is what all snapshots of this host take on disk.
func (a *Agent) snapshotBytes() uint64 {
	ids, _ := a.snapshotIDs()
	var n uint64
	for _, id := range ids {
		n += diskBlocks(a.snapshotPath(id))
	}
	return n
}

// deleteSnapshot removes snapshot id; an unknown ID is not an error.
// Sandboxes started from it are not touched: each has its own copy of the
// layer and its own links of the images. It waits for the restores that
// are copying from the snapshot (see snapMu).
func (a *Agent) deleteSnapshot(id string) error {
	if !capsulespec.ValidID(id) {
		return errdefs.Invalid("snapshot id %q must be %d characters [a-z0-9]", id, capsulespec.IDLength)
	}
	trash := filepath.Join(a.snapshotsDir(), ".del-"+id+"-"+nonce())
	a.snapMu.Lock()
	err := os.Rename(a.snapshotPath(id), trash)
	a.snapMu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	// Renamed away, the snapshot is gone for every reader; a failed
	// removal leaves a temporary that the next start removes.
	if err := os.RemoveAll(trash); err != nil {
		a.log.Error("remove a deleted snapshot's files; the next start retries", "snapshot", id, "err", err)
	}
	a.dropSnapshotPool(id)
	a.log.Info("snapshot deleted", "snapshot", id)
	return nil
}

// recoverSnapshots removes what unfinished creates and deletes of a
// previous agent process left under the snapshots directory and keeps
// every complete snapshot. Called by recover, alone.
func (a *Agent) recoverSnapshots() error {
	if err := os.MkdirAll(a.snapshotsDir(), 0o700); err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	entries, err := os.ReadDir(a.snapshotsDir())
	if err != nil {
		return fmt.Errorf("snapshots: %w", err)
	}
	for _, e := range entries {
		path := filepath.Join(a.snapshotsDir(), e.Name())
		if strings.HasPrefix(e.Name(), ".") || !e.IsDir() || !capsulespec.ValidID(e.Name()) {
			a.log.Info("removing an unfinished snapshot", "path", path)
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("remove unfinished snapshot %s: %w", path, err)
			}
			continue
		}
		if _, err := readSnapshotMeta(path); err != nil {
			// Not ours to judge (a newer agent's, or damaged): kept,
			// left out of the list, removable by DeleteSnapshot.
			a.log.Error("keeping a snapshot this agent cannot read", "snapshot", e.Name(), "err", err)
		}
	}
	return nil
}

// snapshotTemplates lists the template versions the snapshots are over,
// for the template store's prune (templatesHeld).
func (a *Agent) snapshotTemplates() []string {
	ids, _ := a.snapshotIDs()
	var out []string
	for _, id := range ids {
		if m, err := readSnapshotMeta(a.snapshotPath(id)); err == nil && m.Template != "" {
			out = append(out, m.Template)
		}
	}
	return out
}
