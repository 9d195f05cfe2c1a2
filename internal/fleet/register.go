package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/agent"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// joinTokenPrefix starts every join token, so that one pasted in the wrong
// place is recognised.
const joinTokenPrefix = "nbj_"

// Lengths of names an agent reports.
const (
	maxNameLen    = 64
	maxAddressLen = 512
	maxListLen    = 10000 // templates or snapshots in one heartbeat
)

// IsJoinToken reports whether s has the form of a join token.
func IsJoinToken(s string) bool {
	return strings.HasPrefix(s, joinTokenPrefix) && len(s) > len(joinTokenPrefix)
}

func notFound(id string) error { return errdefs.NotFound("host %s not found", id) }

func hashJoinToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateJoinToken makes a join token valid for ttl (zero: a day) and uses
// registrations (zero: one). The secret is returned once; only its hash
// is stored.
func (r *Registry) CreateJoinToken(ctx context.Context, createdBy string, ttl time.Duration, uses int) (string, store.JoinToken, error) {
	if ttl == 0 {
		ttl = DefaultJoinTokenTTL
	}
	if uses == 0 {
		uses = 1
	}
	if ttl < time.Minute || ttl > MaxJoinTokenTTL {
		return "", store.JoinToken{}, errdefs.Invalid("a join token's lifetime must be between 1 minute and %s, got %s", MaxJoinTokenTTL, ttl)
	}
	if uses < 1 || uses > MaxJoinTokenUses {
		return "", store.JoinToken{}, errdefs.Invalid("a join token's uses must be between 1 and %d, got %d", MaxJoinTokenUses, uses)
	}
	secret := joinTokenPrefix + rand.Text() + rand.Text()
	now := r.cfg.Now().UTC()
	t := store.JoinToken{ID: "jt_" + capsulespec.NewID(), Hash: hashJoinToken(secret), CreatedBy: createdBy,
		Created: now, Expires: now.Add(ttl), UsesLeft: uses}
	if err := r.cfg.Store.CreateJoinToken(ctx, t, r.cfg.MaxJoinTokens, now); err != nil {
		return "", store.JoinToken{}, err
	}
	return secret, t, nil
}

// JoinTokens lists the usable join tokens (without secrets: only hashes
// are kept).
func (r *Registry) JoinTokens(ctx context.Context) ([]store.JoinToken, error) {
	return r.cfg.Store.ListJoinTokens(ctx, r.cfg.Now().UTC())
}

// DeleteJoinToken revokes a join token.
func (r *Registry) DeleteJoinToken(ctx context.Context, id string) error {
	return r.cfg.Store.DeleteJoinToken(ctx, id)
}

// Registration is what a host asks for when it joins.
type Registration struct {
	// Name is the operator's name for the host (its hostname); optional.
	Name string `json:"name"`
	// URL is where control planes reach the agent, e.g.
	// https://10.0.0.5:5007.
	URL      string               `json:"url"`
	Capacity nestbox.HostCapacity `json:"capacity"`
}

// Joined is the answer to a registration: the host's identity and the
// credential the control plane will present to it (and that its
// heartbeats and events are authenticated by, through
// agent.EventsToken).
type Joined struct {
	HostID            string `json:"host_id"`
	AgentToken        string `json:"agent_token"`
	HeartbeatInterval int    `json:"heartbeat_interval_seconds"`
}

// storedCapacity is the store's row of a host's report.
func storedCapacity(c nestbox.HostCapacity) store.HostCapacity {
	return store.HostCapacity{
		Version: c.Version, Driver: c.Driver, CPUs: c.CPUs,
		MemoryTotalBytes: c.MemoryTotalBytes, MemoryAvailableBytes: c.MemoryAvailableBytes,
		MemoryReservedBytes: c.MemoryReservedBytes, MemoryAllocatedBytes: c.MemoryAllocatedBytes,
		MemoryCommitLimit: c.MemoryCommitLimit,
		DiskTotalBytes:    c.DiskTotalBytes, DiskAvailableBytes: c.DiskAvailableBytes,
		DiskReservedBytes: c.DiskReservedBytes, DiskAllocatedBytes: c.DiskAllocatedBytes,
		Sandboxes: c.Sandboxes, MaxSandboxes: c.MaxSandboxes, VCPUsAllocated: c.VCPUsAllocated,
		Running: c.Running, Paused: c.Paused, Templates: c.Templates, Snapshots: c.Snapshots, Pooled: c.Pooled,
	}
}

// Register admits a host that presents a join token: it gets an ID and an
// agent token made here. The token's use is taken in the transaction that
// records the host.
func (r *Registry) Register(ctx context.Context, joinToken string, reg Registration) (Joined, error) {
	if !IsJoinToken(joinToken) {
		return Joined{}, errdefs.Unauthenticated("a join token (nbj_...) is required: make one with `nestbox host token create`")
	}
	if err := checkRegistration(reg.Name, reg.URL, reg.Capacity); err != nil {
		return Joined{}, err
	}
	hs, err := r.cfg.Store.ListHosts(ctx)
	if err != nil {
		return Joined{}, err
	}
	if len(hs) >= r.cfg.MaxHosts {
		return Joined{}, fmt.Errorf("register a host: %d hosts are registered, the most allowed: %w", len(hs), errdefs.ErrExhausted)
	}
	now := r.cfg.Now().UTC()
	h := store.Host{ID: "h_" + capsulespec.NewID(), Name: reg.Name, Address: strings.TrimRight(reg.URL, "/"),
		AgentToken: rand.Text() + rand.Text(), State: store.HostActive, Capacity: storedCapacity(reg.Capacity), LastSeen: now, Created: now}
	if err := r.cfg.Store.RegisterHost(ctx, h, hashJoinToken(joinToken), now); err != nil {
		return Joined{}, err
	}
	r.reload(ctx)
	r.log.Info("host registered", "host", h.ID, "name", h.Name, "url", h.Address)
	return Joined{HostID: h.ID, AgentToken: h.AgentToken, HeartbeatInterval: int(r.cfg.HeartbeatInterval / time.Second)}, nil
}

// checkRegistration refuses what an agent may not report.
func checkRegistration(name, rawURL string, c nestbox.HostCapacity) error {
	if len(name) > maxNameLen {
		return errdefs.Invalid("a host name is at most %d bytes, got %d", maxNameLen, len(name))
	}
	if len(rawURL) > maxAddressLen {
		return errdefs.Invalid("a host URL is at most %d bytes", maxAddressLen)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errdefs.Invalid("a host URL must be an http or https URL with a host and nothing after the path, got %q", rawURL)
	}
	if len(c.Templates) > maxListLen || len(c.Snapshots) > maxListLen || len(c.Pooled) > maxListLen {
		return errdefs.Invalid("a heartbeat lists at most %d templates, pooled templates and snapshots each", maxListLen)
	}
	return nil
}

// Heartbeat records a host's heartbeat. The host is authenticated by the
// caller (AuthenticateHost). A host that was unreachable gets its
// capsules reconciled at once (HostWatcher).
func (r *Registry) Heartbeat(ctx context.Context, id, rawURL string, report nestbox.HostCapacity) (store.HostState, error) {
	if err := checkRegistration("", rawURL, report); err != nil {
		return "", err
	}
	c := storedCapacity(report)
	addr, at := strings.TrimRight(rawURL, "/"), r.cfg.Now().UTC()
	back, err := r.cfg.Store.HeartbeatHost(ctx, id, addr, c, at)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	delete(r.placed, id) // the report now shows them
	// This control plane's cache has the report at once; the others'
	// read it within a second. Its state (an operator's, at most a second
	// old) is the answer's.
	var state store.HostState
	if i := slices.IndexFunc(r.hosts, func(h store.Host) bool { return h.ID == id }); i >= 0 {
		r.hosts = slices.Clone(r.hosts)
		r.hosts[i].Address, r.hosts[i].Capacity, r.hosts[i].LastSeen, r.hosts[i].Unreachable = addr, c, at, false
		state = r.hosts[i].State
	}
	r.mu.Unlock()
	if back {
		r.log.Info("host reachable again; reconciling it", "host", id)
		r.reload(ctx)
		if w := r.hostWatcher(); w != nil {
			w.ReconcileHostSoon(id)
		}
	}
	if state == "" { // registered through another control plane a moment ago
		h, err := r.cfg.Store.GetHost(ctx, id)
		if err != nil {
			return "", err
		}
		state = h.State
	}
	return state, nil
}

// AuthenticateHost reports whether token is the events token of host id
// (agent.EventsToken of the agent token it was issued). Unknown hosts and
// wrong tokens take the same path, so the time says nothing.
func (r *Registry) AuthenticateHost(ctx context.Context, id, token string) bool {
	h, err := r.cfg.Store.GetHost(ctx, id)
	want := "x" // compared against, so that an unknown host costs the same
	if err == nil && h.AgentToken != "" {
		want = agent.EventsToken(h.AgentToken)
	} else if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		r.log.Warn("authenticate a host", "host", id, "err", err)
	}
	return subtle.ConstantTimeCompare([]byte(token), []byte(want)) == 1 && err == nil
}

// Hosts lists the registered hosts, read from the store now.
func (r *Registry) Hosts(ctx context.Context) ([]store.Host, error) {
	return r.cfg.Store.ListHosts(ctx)
}

// Host returns one registered host, read from the store now.
func (r *Registry) Host(ctx context.Context, id string) (store.Host, error) {
	return r.cfg.Store.GetHost(ctx, id)
}

// SetState cordons, drains or reactivates a host.
func (r *Registry) SetState(ctx context.Context, id string, st store.HostState) error {
	if err := r.cfg.Store.SetHostState(ctx, id, st); err != nil {
		return err
	}
	r.reload(ctx)
	r.log.Info("host state changed", "host", id, "state", st)
	return nil
}

// Remove forgets a host. live is how many of its capsules are not ended:
// a host with live capsules is not removed (ErrConflict): drain it first
// (or destroy them).
func (r *Registry) Remove(ctx context.Context, id string, live int) error {
	if live > 0 {
		return errdefs.Conflict("host %s still has %d live capsules: drain it and wait for them to end, or destroy them", id, live)
	}
	if err := r.cfg.Store.DeleteHost(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.clients, id)
	delete(r.placed, id)
	r.mu.Unlock()
	r.reload(ctx)
	r.log.Info("host removed", "host", id)
	return nil
}
