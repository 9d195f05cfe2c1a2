package nestbox

import (
	"context"
	"net/http"
	"time"
)

// Host is a machine of a fleet as platform admins see it (GET /v1/hosts).
type Host struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// URL is where control planes reach the host's agent.
	URL string `json:"url"`
	// State is the operator's: "active" (takes new capsules),
	// "cordoned" (takes none; its capsules run on) or "draining" (takes
	// none and waits for its capsules to end; nothing is moved).
	State string `json:"state"`
	// Reachable is false once heartbeats stopped; its capsules are then
	// "missing" until it is heard from again.
	Reachable bool         `json:"reachable"`
	Capacity  HostCapacity `json:"capacity"`
	// Capsules counts the host's capsules that have not ended.
	Capsules   int       `json:"capsules"`
	LastSeenAt time.Time `json:"last_seen_at"`
	CreatedAt  time.Time `json:"created_at"`
}

// HostCapacity is what a host reports in each heartbeat (POST
// /v1/hosts/heartbeat) and what GET /v1/admin/hosts shows of the last one.
// The memory and disk figures are those of the agent's admission check
// (its Ping).
type HostCapacity struct {
	Version              string   `json:"version,omitempty"`
	Driver               string   `json:"driver,omitempty"`
	CPUs                 uint32   `json:"cpus,omitempty"`
	MemoryTotalBytes     uint64   `json:"memory_total_bytes,omitempty"`
	MemoryAvailableBytes uint64   `json:"memory_available_bytes,omitempty"`
	MemoryReservedBytes  uint64   `json:"memory_reserved_bytes,omitempty"`
	MemoryAllocatedBytes uint64   `json:"memory_allocated_bytes,omitempty"`
	MemoryCommitLimit    uint64   `json:"memory_commit_limit_bytes,omitempty"`
	DiskTotalBytes       uint64   `json:"disk_total_bytes,omitempty"`
	DiskAvailableBytes   uint64   `json:"disk_available_bytes,omitempty"`
	DiskReservedBytes    uint64   `json:"disk_reserved_bytes,omitempty"`
	DiskAllocatedBytes   uint64   `json:"disk_allocated_bytes,omitempty"`
	Sandboxes            uint32   `json:"sandboxes"`
	MaxSandboxes         uint32   `json:"max_sandboxes,omitempty"`
	VCPUsAllocated       uint32   `json:"vcpus_allocated,omitempty"`
	Running              uint32   `json:"running"`
	Paused               uint32   `json:"paused"`
	Templates            []string `json:"templates,omitempty"` // built on the host
	Snapshots            []string `json:"snapshots,omitempty"` // kept on the host
	// Pooled are the templates of which the host's warm pools hold a
	// sandbox ready to claim (a create of one starts in milliseconds).
	Pooled []string `json:"pooled,omitempty"`
}

// HostList is the answer of GET /v1/hosts.
type HostList struct {
	Hosts []Host `json:"hosts"`
}

// JoinToken is a token that lets hosts register (`nestbox agent
// --control-plane URL --join-token T`).
type JoinToken struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	UsesLeft  int       `json:"uses_left"`
	// Token is the secret, set only in the answer that made it.
	Token string `json:"token,omitempty"`
}

// CreateJoinTokenRequest is the body of POST /v1/admin/join-tokens. Zero
// values mean a day and one use.
type CreateJoinTokenRequest struct {
	TTLSeconds int `json:"ttl_seconds,omitempty"`
	Uses       int `json:"uses,omitempty"`
}

// JoinTokenList is the answer of GET /v1/admin/join-tokens.
type JoinTokenList struct {
	Tokens []JoinToken `json:"tokens"`
}

// Hosts lists the fleet's hosts (platform admins only).
func (c *Client) Hosts(ctx context.Context) ([]Host, error) {
	var l HostList
	err := c.do(ctx, http.MethodGet, "/v1/admin/hosts", nil, nil, &l)
	return l.Hosts, err
}

// Host returns one host (platform admins only).
func (c *Client) Host(ctx context.Context, id string) (Host, error) {
	var h Host
	err := c.do(ctx, http.MethodGet, pathf("/v1/admin/hosts/%s", id), nil, nil, &h)
	return h, err
}

// SetHostState cordons ("cordon"), drains ("drain") or reactivates
// ("uncordon") a host, and returns it.
func (c *Client) SetHostState(ctx context.Context, id, action string) (Host, error) {
	var h Host
	err := c.do(ctx, http.MethodPost, pathf("/v1/admin/hosts/%s/%s", id, action), nil, nil, &h)
	return h, err
}

// RemoveHost forgets a host that has no live capsules.
func (c *Client) RemoveHost(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, pathf("/v1/admin/hosts/%s", id), nil, nil, nil)
}

// CreateJoinToken makes a join token; its secret is in the answer only.
func (c *Client) CreateJoinToken(ctx context.Context, req CreateJoinTokenRequest) (JoinToken, error) {
	var t JoinToken
	err := c.do(ctx, http.MethodPost, "/v1/admin/join-tokens", nil, req, &t)
	return t, err
}

// JoinTokens lists the usable join tokens, without their secrets.
func (c *Client) JoinTokens(ctx context.Context) ([]JoinToken, error) {
	var l JoinTokenList
	err := c.do(ctx, http.MethodGet, "/v1/admin/join-tokens", nil, nil, &l)
	return l.Tokens, err
}

// DeleteJoinToken revokes a join token.
func (c *Client) DeleteJoinToken(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, pathf("/v1/admin/join-tokens/%s", id), nil, nil, nil)
}
