package nestbox

import "time"

// This file holds the JSON objects of Nestbox's REST API (/v1). The control
// plane serves exactly these types, so the SDK and the server cannot drift
// apart; docs/api.md and the OpenAPI spec at /openapi.yaml describe them.

// Status is a capsule's place in its lifecycle. Starting, pausing,
// resuming and stopping are transient: the control plane is working on the
// capsule in the background. docs/architecture.md draws the transitions
// between them; the control plane's state machine enforces them.
type Status string

// The statuses of a capsule.
const (
	StatusStarting Status = "starting"
	StatusRunning  Status = "running"
	StatusPausing  Status = "pausing"
	// StatusPaused is a capsule kept on its host's disk (with its memory,
	// unless it was paused without): it costs no memory or CPU, its
	// lifetime is frozen, and a resume brings it back as it was.
	StatusPaused   Status = "paused"
	StatusResuming Status = "resuming"
	StatusStopping Status = "stopping"
	StatusStopped  Status = "stopped"
	StatusError    Status = "error"
	// StatusMissing is a capsule whose host stopped answering: it may
	// still run there. It changes again when the host answers.
	StatusMissing Status = "missing"
)

// Final reports whether the capsule is gone for good (stopped or error):
// its status never changes again.
func (s Status) Final() bool { return s == StatusStopped || s == StatusError }

// Capsule is a sandbox as the API shows it.
type Capsule struct {
	ID       string `json:"id"`
	TeamID   string `json:"team_id"`
	Template string `json:"template"`
	Status   Status `json:"status"`
	// Error says why the capsule is in StatusError.
	Error    string            `json:"error,omitempty"`
	VCPUs    int               `json:"vcpus"`
	MemoryMB int               `json:"memory_mb"`
	DiskMB   int               `json:"disk_mb"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Internet bool              `json:"internet"`
	AllowOut []string          `json:"allow_out,omitempty"`
	DenyOut  []string          `json:"deny_out,omitempty"`
	HostID   string            `json:"host_id,omitempty"`
	// EnvdVersion is the version of the agent inside the capsule, known
	// once it runs.
	EnvdVersion string `json:"envd_version,omitempty"`
	// TrafficAccessToken is set when the capsule's ports are private
	// (CreateCapsuleRequest.PublicTraffic false): traffic routed to them
	// without an API key (E2B's routing headers, {port}-{id}.{domain} host
	// names) must send it in the e2b-traffic-access-token header. Empty
	// means public.
	TrafficAccessToken string     `json:"traffic_access_token,omitempty"`
	CreatedAt          time.Time  `json:"created_at"`
	StartedAt          *time.Time `json:"started_at,omitempty"`
	// ExpiresAt is when the platform destroys the capsule (or pauses it,
	// with AutoPause) unless its timeout is extended. While the capsule is
	// paused its lifetime is frozen: a resume sets a new one.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	StoppedAt *time.Time `json:"stopped_at,omitempty"`
	// PausedAt is when the capsule was last paused.
	PausedAt *time.Time `json:"paused_at,omitempty"`
	// AutoPause: at its timeout the capsule is paused instead of
	// destroyed, with its memory unless AutoPauseMemory is false.
	AutoPause       bool `json:"auto_pause,omitempty"`
	AutoPauseMemory bool `json:"auto_pause_memory,omitempty"`
	// AutoResume: a request routed to the paused capsule (exec, files,
	// PTY, its ports) resumes it and waits for it instead of failing.
	AutoResume bool `json:"auto_resume,omitempty"`
	// SnapshotID is the snapshot the capsule started from, if any.
	SnapshotID string `json:"snapshot_id,omitempty"`
}

// CreateCapsuleRequest is the body of POST /v1/capsules. Zero fields take
// the documented defaults.
type CreateCapsuleRequest struct {
	// Template defaults to "base". It may name one of the team's
	// snapshots (its ID or name) or a template made from one: the capsule
	// then starts from the snapshot, with its template, sizes and egress
	// rules (sizes or rules asked for must match), its processes, memory
	// and files, and its own ID, token, network and lifetime; EnvVars are
	// added for new processes.
	Template string `json:"template,omitempty"`
	// VCPUs defaults to 1, MemoryMB to 512.
	VCPUs    int `json:"vcpus,omitempty"`
	MemoryMB int `json:"memory_mb,omitempty"`
	// DiskMB is the writable layer's size; zero means the host's default.
	// It is never smaller than the template.
	DiskMB int `json:"disk_mb,omitempty"`
	// TimeoutSeconds until the capsule is destroyed; zero means 300.
	TimeoutSeconds int               `json:"timeout_seconds,omitempty"`
	EnvVars        map[string]string `json:"env_vars,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	// Internet defaults to true: outbound traffic is allowed.
	Internet *bool `json:"internet,omitempty"`
	// AllowOut and DenyOut are IPv4 addresses or prefixes; allow wins.
	AllowOut []string `json:"allow_out,omitempty"`
	DenyOut  []string `json:"deny_out,omitempty"`
	// PublicTraffic defaults to true: anyone who knows the capsule's ID
	// reaches its ports through the sandbox routes. False gives the capsule
	// a TrafficAccessToken that such traffic must carry (E2B's
	// network.allowPublicTraffic). envd's port keeps its own access token
	// either way, and /proxy/{id}/{port} needs the team's API key.
	PublicTraffic *bool `json:"public_traffic,omitempty"`
	// AutoPause pauses the capsule at the end of its timeout instead of
	// destroying it (E2B's autoPause, lifecycle.onTimeout "pause").
	AutoPause bool `json:"auto_pause,omitempty"`
	// AutoPauseMemory defaults to true: an automatic pause keeps the
	// memory (processes go on after resume). False keeps only the disk
	// and boots fresh on resume. Meaningful only with AutoPause.
	AutoPauseMemory *bool `json:"auto_pause_memory,omitempty"`
	// AutoResume makes the next request routed to the paused capsule
	// resume it (E2B's autoResume).
	AutoResume bool `json:"auto_resume,omitempty"`
}

// PauseRequest is the body of POST /v1/capsules/{id}/pause (optional).
type PauseRequest struct {
	// Memory defaults to true: the pause keeps the memory, so processes
	// go on after resume. False keeps only the disk; the resume boots
	// the capsule fresh from it.
	Memory *bool `json:"memory,omitempty"`
}

// ResumeRequest is the body of POST /v1/capsules/{id}/resume (optional).
type ResumeRequest struct {
	// TimeoutSeconds is the resumed capsule's lifetime from the resume;
	// zero means the lifetime it had left when it was paused (or 300 s
	// if none was left).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// Memory defaults to true: a capsule paused with its memory is
	// restored with it. False boots it fresh from its disk instead (its
	// files kept, its processes started anew) and drops the memory image.
	Memory *bool `json:"memory,omitempty"`
}

// ForkRequest is the body of POST /v1/capsules/{id}/fork.
type ForkRequest struct {
	// Count is how many forks to make, 1 to 10; zero means 1.
	Count int `json:"count,omitempty"`
	// TimeoutSeconds is each fork's lifetime; zero means 300 s.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

// ForkResult is one fork: its capsule, or why it could not be made (a
// fork whose sandbox fails later is its capsule in StatusError).
type ForkResult struct {
	Capsule *Capsule     `json:"capsule,omitempty"`
	Error   *ErrorDetail `json:"error,omitempty"`
}

// ForkResponse is the answer of POST /v1/capsules/{id}/fork: the source
// and one result per fork asked for. Each fork is a new capsule that
// starts with the source's processes, memory and files, with its own ID,
// access token, network and lifetime.
type ForkResponse struct {
	Source Capsule      `json:"source"`
	Forks  []ForkResult `json:"forks"`
}

// SnapshotStatus is a snapshot's place in its lifecycle.
type SnapshotStatus string

// The statuses of a snapshot. A snapshot whose host fails to make it is
// removed, not kept in an error status.
const (
	// SnapshotCreating: the host is checkpointing the capsule.
	SnapshotCreating SnapshotStatus = "creating"
	// SnapshotReady: capsules can start from it.
	SnapshotReady SnapshotStatus = "ready"
	// SnapshotDeleting: a delete is removing it from its host.
	SnapshotDeleting SnapshotStatus = "deleting"
	// SnapshotError: its host no longer has it (Error says why); only a
	// delete applies.
	SnapshotError SnapshotStatus = "error"
)

// Snapshot is a capsule's processes, memory and files, kept on the host
// that took it. Capsules start from it by naming it where a create names a
// template (its ID or its name); each gets its own ID, access token,
// network and lifetime.
type Snapshot struct {
	// ID is 20 characters of [a-z0-9], like a capsule's.
	ID     string `json:"id"`
	TeamID string `json:"team_id"`
	// Name is "name:tag" (the tag "default" when none was given), unique
	// in the team; empty for an unnamed snapshot.
	Name string `json:"name,omitempty"`
	// CapsuleID is the capsule it was taken from, which may be gone.
	CapsuleID string         `json:"capsule_id"`
	HostID    string         `json:"host_id,omitempty"`
	Status    SnapshotStatus `json:"status"`
	Error     string         `json:"error,omitempty"`
	// The source's template and sizes, which every capsule started from
	// the snapshot has.
	Template string   `json:"template"`
	VCPUs    int      `json:"vcpus"`
	MemoryMB int      `json:"memory_mb"`
	DiskMB   int      `json:"disk_mb"`
	Internet bool     `json:"internet"`
	AllowOut []string `json:"allow_out,omitempty"`
	DenyOut  []string `json:"deny_out,omitempty"`
	// SizeBytes is what the snapshot takes on its host's disk, counted in
	// the team's disk quota. While it is being created it is the most it
	// can take (the source's disk and memory).
	SizeBytes   int64  `json:"size_bytes"`
	EnvdVersion string `json:"envd_version,omitempty"`
	// TemplateName is the name of the template made from this snapshot
	// (POST /v1/templates with from_snapshot), if any: the snapshot
	// cannot be deleted while it has one.
	TemplateName string    `json:"template_name,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// CreateSnapshotRequest is the body of POST /v1/capsules/{id}/snapshots
// (optional).
type CreateSnapshotRequest struct {
	// Name is "name" or "name:tag" (tag "default" when omitted): letters,
	// digits, '.', '_' and '-', starting with a letter or digit, at most
	// 63 characters each. Empty makes an unnamed snapshot.
	Name string `json:"name,omitempty"`
	// Pause pauses the capsule (with its memory) once the snapshot is
	// taken; by default it runs on.
	Pause bool `json:"pause,omitempty"`
}

// SnapshotList is a page of GET /v1/snapshots.
type SnapshotList struct {
	Snapshots []Snapshot `json:"snapshots"`
	// NextCursor, when not empty, fetches the next page (?cursor=).
	NextCursor string `json:"next_cursor,omitempty"`
}

// CreateTemplateRequest is the body of POST /v1/templates: a template
// made from one of the team's snapshots, which capsules start from by its
// name.
type CreateTemplateRequest struct {
	Name string `json:"name"`
	// FromSnapshot is the snapshot's ID or name.
	FromSnapshot string `json:"from_snapshot"`
}

// CapsuleList is a page of GET /v1/capsules.
type CapsuleList struct {
	Capsules []Capsule `json:"capsules"`
	// NextCursor, when not empty, fetches the next page (?cursor=).
	NextCursor string `json:"next_cursor,omitempty"`
}

// SetTimeoutRequest is the body of POST /v1/capsules/{id}/timeout.
type SetTimeoutRequest struct {
	TimeoutSeconds int `json:"timeout_seconds"`
}

// ExecRequest is the body of POST /v1/capsules/{id}/exec and the first
// message of the exec WebSocket.
type ExecRequest struct {
	// Cmd is the program and its arguments; Cmd[0] is looked up in PATH.
	Cmd []string          `json:"cmd"`
	Env map[string]string `json:"env,omitempty"`
	// Cwd defaults to the user's home directory.
	Cwd string `json:"cwd,omitempty"`
	// User defaults to "user"; "root" is allowed.
	User string `json:"user,omitempty"`
	// Stdin is written to the process and then closed.
	Stdin []byte `json:"stdin,omitempty"`
	// TimeoutSeconds kills the process after that long; zero means 60 for
	// a one-shot exec, and no limit for a background process or one
	// followed over the exec WebSocket.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
	// Background returns at once with the pid; the process keeps running.
	Background bool `json:"background,omitempty"`
	// Tag names a background process so that it can be found again.
	Tag string `json:"tag,omitempty"`
}

// ExecResult is the answer of POST /v1/capsules/{id}/exec.
type ExecResult struct {
	Pid uint32 `json:"pid"`
	// ExitCode, Stdout and Stderr are set for a one-shot exec. ExitCode is
	// -1 when the process was killed by a signal.
	ExitCode int    `json:"exit_code"`
	Stdout   string `json:"stdout,omitempty"`
	Stderr   string `json:"stderr,omitempty"`
	// StdoutTruncated and StderrTruncated say that the stream was longer
	// than the server keeps of a one-shot exec (8 MiB each by default, less
	// when many execs are in flight): Stdout or Stderr holds its start.
	StdoutTruncated bool `json:"stdout_truncated,omitempty"`
	StderrTruncated bool `json:"stderr_truncated,omitempty"`
	// Error is the process's fate in words when it did not exit normally
	// ("signal: killed", "timed out").
	Error string `json:"error,omitempty"`
}

// Process is one process running in a capsule (GET /v1/capsules/{id}/processes).
type Process struct {
	Pid  uint32   `json:"pid"`
	Tag  string   `json:"tag,omitempty"`
	Cmd  []string `json:"cmd"`
	Cwd  string   `json:"cwd,omitempty"`
	User string   `json:"user,omitempty"`
}

// SignalRequest is the body of POST /v1/capsules/{id}/processes/{pid}/signal.
type SignalRequest struct {
	// Signal is "SIGTERM" or "SIGKILL".
	Signal string `json:"signal"`
}

// ProcessList is the answer of GET /v1/capsules/{id}/processes.
type ProcessList struct {
	Processes []Process `json:"processes"`
}

// StreamMessage is one JSON text message of the exec WebSocket
// (GET /v1/capsules/{id}/exec/stream) and the control messages of the PTY
// WebSocket. Which fields are set depends on Type.
//
// Server to client: "started" (Pid, Tag), "stdout" and "stderr" (Data),
// "exit" (ExitCode, Error), "error" (Code, Error: the stream failed and
// closes), "rejected" (Code, Error: a client message was refused; the
// stream goes on).
// Client to server: "stdin" (Data), "close_stdin", "signal" (Signal:
// "SIGTERM" or "SIGKILL"), "resize" (Cols, Rows; PTY only).
type StreamMessage struct {
	Type string `json:"type"`
	// Code is the error code of "error" and "rejected" (as in ErrorDetail).
	Code     string `json:"code,omitempty"`
	Pid      uint32 `json:"pid,omitempty"`
	Tag      string `json:"tag,omitempty"`
	Data     []byte `json:"data,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	Error    string `json:"error,omitempty"`
	Signal   string `json:"signal,omitempty"`
	Cols     int    `json:"cols,omitempty"`
	Rows     int    `json:"rows,omitempty"`
}

// EntryType is the kind of a filesystem entry.
type EntryType string

// The kinds of filesystem entries.
const (
	EntryFile    EntryType = "file"
	EntryDir     EntryType = "dir"
	EntrySymlink EntryType = "symlink"
)

// Entry describes a file or directory in a capsule.
type Entry struct {
	Name string    `json:"name"`
	Path string    `json:"path"`
	Type EntryType `json:"type"`
	Size int64     `json:"size"`
	// Mode is the Unix mode bits (permissions and type), as in stat(2).
	Mode          uint32    `json:"mode"`
	Permissions   string    `json:"permissions,omitempty"`
	Owner         string    `json:"owner,omitempty"`
	Group         string    `json:"group,omitempty"`
	ModifiedAt    time.Time `json:"modified_at"`
	SymlinkTarget string    `json:"symlink_target,omitempty"`
}

// EntryList is the answer of GET /v1/capsules/{id}/files/list.
type EntryList struct {
	Entries []Entry `json:"entries"`
}

// MakeDirRequest is the body of POST /v1/capsules/{id}/files/mkdir. Parents
// are created as needed.
type MakeDirRequest struct {
	Path string `json:"path"`
}

// Metrics is a sample of a capsule's resource use.
type Metrics struct {
	At               time.Time `json:"at"`
	CPUUsedPct       float64   `json:"cpu_used_pct"`
	CPUCount         int       `json:"cpu_count"`
	MemoryUsedBytes  uint64    `json:"memory_used_bytes"`
	MemoryTotalBytes uint64    `json:"memory_total_bytes"`
	DiskUsedBytes    uint64    `json:"disk_used_bytes"`
	DiskTotalBytes   uint64    `json:"disk_total_bytes"`
	RxBytes          uint64    `json:"rx_bytes"`
	TxBytes          uint64    `json:"tx_bytes"`
}

// CapsuleEvent is one status change of a capsule
// (GET /v1/capsules/{id}/events).
type CapsuleEvent struct {
	CapsuleID string    `json:"capsule_id"`
	From      Status    `json:"from,omitempty"`
	To        Status    `json:"to"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`

	// The rest of the change, carried on the control plane's event stream
	// so that a consumer applying an unrecorded change applies all of it.
	// The history (GET /v1/capsules/{id}/events) leaves them out.
	HostID      string     `json:"host_id,omitempty"`
	EnvdVersion string     `json:"envd_version,omitempty"`
	DiskMB      int        `json:"disk_mb,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	StoppedAt   *time.Time `json:"stopped_at,omitempty"`
	// PausedAt, PausedMemory and RemainingMS are set on a change to
	// paused: when, whether the memory was kept, and how much lifetime
	// was left (frozen until the resume).
	PausedAt     *time.Time `json:"paused_at,omitempty"`
	PausedMemory bool       `json:"paused_memory,omitempty"`
	RemainingMS  int64      `json:"remaining_ms,omitempty"`
	// Generation is the capsule's change counter after this change: a
	// consumer applies the change only to the capsule at Generation-1,
	// so a late event cannot re-apply an old change after the status
	// has cycled (running → paused → running).
	Generation int64 `json:"generation,omitempty"`
}

// CapsuleEventList is the answer of GET /v1/capsules/{id}/events.
type CapsuleEventList struct {
	Events []CapsuleEvent `json:"events"`
}

// APIKey is a team's API key as listed; the secret itself is shown only
// once, in APIKeyCreated.
type APIKey struct {
	ID     string `json:"id"`
	TeamID string `json:"team_id"`
	Name   string `json:"name"`
	// Prefix is the key's first characters, to recognise it.
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// CreateAPIKeyRequest is the body of POST /v1/keys.
type CreateAPIKeyRequest struct {
	Name string `json:"name"`
}

// APIKeyCreated is the answer of POST /v1/keys: the only time the secret is
// shown.
type APIKeyCreated struct {
	APIKey
	// Key is "nbx_" and 40 hex digits. The same secret is accepted as
	// "e2b_" and the same hex digits, for E2B's SDKs.
	Key string `json:"key"`
}

// APIKeyList is the answer of GET /v1/keys.
type APIKeyList struct {
	Keys []APIKey `json:"keys"`
}

// Template is a root filesystem capsules start from.
type Template struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	SizeBytes   int64     `json:"size_bytes"`
	CreatedAt   time.Time `json:"created_at"`
	// SnapshotID is set on a team's template made from a snapshot: its
	// capsules start from that snapshot.
	SnapshotID string `json:"snapshot_id,omitempty"`
	// PoolSize is the warm pool of a template made from a snapshot: how
	// many capsules its host keeps restored and ready to claim.
	PoolSize int `json:"pool_size,omitempty"`
}

// TemplatePoolRequest is the body of PUT /v1/templates/{name}/pool.
type TemplatePoolRequest struct {
	Size int `json:"size"`
}

// TemplateList is the answer of GET /v1/templates.
type TemplateList struct {
	Templates []Template `json:"templates"`
}

// ErrorBody is the JSON body of every error answer of /v1.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a stable machine-readable code and a human message.
// Codes: invalid_argument, unauthenticated, permission_denied, not_found,
// already_exists, conflict, too_large, resource_exhausted, no_space,
// unavailable, deadline_exceeded, unimplemented, internal.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
