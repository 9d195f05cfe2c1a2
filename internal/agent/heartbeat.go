package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// HostIDHeader names the host on the requests a fleet agent makes of its
// control plane (heartbeats, events); Authorization carries its events
// token.
const HostIDHeader = "Nestbox-Host-ID"

// DefaultHeartbeatInterval is Heartbeat.Interval's default; the control
// plane's answer to each heartbeat may change it.
const DefaultHeartbeatInterval = 5 * time.Second

// Heartbeat makes an agent of a fleet report to its control plane, every
// Interval, its address and capacity: what Ping answers, the templates it
// has built and its running and paused sandboxes. The control plane
// schedules on these reports and marks the host unreachable when they
// stop.
type Heartbeat struct {
	// URL is the control plane's POST /v1/hosts/heartbeat.
	URL string
	// AdvertiseURL is where control planes reach this agent.
	AdvertiseURL string
	// Interval is the first interval; zero means 5 s.
	Interval time.Duration
}

// heartbeatReport is the body of a heartbeat (the control plane's
// server.heartbeat).
type heartbeatReport struct {
	URL      string               `json:"url"`
	Capacity nestbox.HostCapacity `json:"capacity"`
}

// Capacity is the report of a registration or heartbeat.
func (a *Agent) Capacity(ctx context.Context) (nestbox.HostCapacity, error) {
	p, err := a.ping(ctx)
	if err != nil {
		return nestbox.HostCapacity{}, err
	}
	c := capacityOf(p)
	for _, t := range a.listTemplates() {
		if t.Built {
			c.Templates = append(c.Templates, t.Name)
		}
	}
	if ids, err := a.snapshotIDs(); err == nil {
		c.Snapshots = ids
	}
	c.Pooled = a.pooledTemplates()
	a.mu.Lock()
	for _, sb := range a.sandboxes {
		switch sb.status {
		case statusRunning:
			c.Running++
		case statusPaused:
			c.Paused++
		}
	}
	a.mu.Unlock()
	return c, nil
}

func capacityOf(p *agentpb.PingResponse) nestbox.HostCapacity {
	return nestbox.HostCapacity{
		Version: p.Version, Driver: p.Driver, CPUs: p.Cpus,
		MemoryTotalBytes: p.MemoryTotalBytes, MemoryAvailableBytes: p.MemoryAvailableBytes,
		MemoryReservedBytes: p.MemoryReservedBytes, MemoryAllocatedBytes: p.MemoryAllocatedBytes,
		MemoryCommitLimit: p.MemoryCommitLimitBytes,
		DiskTotalBytes:    p.DiskTotalBytes, DiskAvailableBytes: p.DiskAvailableBytes,
		DiskReservedBytes: p.DiskReservedBytes, DiskAllocatedBytes: p.DiskAllocatedBytes,
		Sandboxes: p.Sandboxes, MaxSandboxes: p.MaxSandboxes, VCPUsAllocated: p.VcpusAllocated,
	}
}

// heartbeat reports to the control plane until ctx ends. A failed
// heartbeat is logged and tried again at the next interval: the control
// plane judges silence, the agent does not.
func (a *Agent) heartbeat(ctx context.Context) {
	hb := a.cfg.Heartbeat
	interval := hb.Interval
	if interval <= 0 {
		interval = DefaultHeartbeatInterval
	}
	client := &http.Client{Timeout: 10 * time.Second}
	failing := false
	for {
		next, err := a.beat(ctx, client)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			a.log.Warn("heartbeat to the control plane failed; trying again", "err", err)
			failing = true
		case err == nil:
			if failing {
				a.log.Info("heartbeats reach the control plane again")
			}
			failing = false
			if next > 0 {
				interval = next
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// beat sends one heartbeat and returns the interval the control plane
// asks for (zero: unchanged).
func (a *Agent) beat(ctx context.Context, client *http.Client) (time.Duration, error) {
	c, err := a.Capacity(ctx)
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(heartbeatReport{URL: a.cfg.Heartbeat.AdvertiseURL, Capacity: c})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Heartbeat.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.cfg.EventsToken)
	req.Header.Set(HostIDHeader, a.cfg.HostID)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("the control plane answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var ans struct {
		HeartbeatInterval int `json:"heartbeat_interval_seconds"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return 0, fmt.Errorf("the control plane's heartbeat answer: %w", err)
	}
	return time.Duration(ans.HeartbeatInterval) * time.Second, nil
}

// Membership is a fleet agent's identity, kept in <data-dir>/fleet.json
// (mode 0600) so that a restarted agent heartbeats as the same host
// instead of joining again. Its agent token is in the token file.
type Membership struct {
	Version      int    `json:"version"`
	ControlPlane string `json:"control_plane"`
	HostID       string `json:"host_id"`
}

const membershipFile = "fleet.json"

// ReadMembership returns the membership recorded in dataDir; none is
// errdefs.ErrNotFound.
func ReadMembership(dataDir string) (Membership, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, membershipFile))
	if os.IsNotExist(err) {
		return Membership{}, errdefs.NotFound("no fleet membership in %s", dataDir)
	}
	if err != nil {
		return Membership{}, err
	}
	var m Membership
	if err := json.Unmarshal(b, &m); err != nil || m.HostID == "" || m.ControlPlane == "" {
		return Membership{}, fmt.Errorf("%s is damaged (remove it to join again): %v", filepath.Join(dataDir, membershipFile), err)
	}
	return m, nil
}

// Join registers this host with the control plane at cpURL with a join
// token: it sends where the agent is reached, writes the agent token it
// is issued to tokenFile and the membership to dataDir, and returns the
// membership. The capacity comes with the first heartbeat: until then the
// control plane places nothing on the host.
func Join(ctx context.Context, cpURL, joinToken, advertiseURL, name, dataDir, tokenFile string) (Membership, error) {
	body, err := json.Marshal(struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}{name, advertiseURL})
	if err != nil {
		return Membership{}, err
	}
	cpURL = strings.TrimRight(cpURL, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cpURL+"/v1/hosts/register", bytes.NewReader(body))
	if err != nil {
		return Membership{}, fmt.Errorf("join %s: %w", cpURL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+joinToken)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return Membership{}, fmt.Errorf("join %s: %w", cpURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		return Membership{}, fmt.Errorf("join %s: the control plane answered %s: %s", cpURL, resp.Status, strings.TrimSpace(string(b)))
	}
	var joined struct {
		HostID     string `json:"host_id"`
		AgentToken string `json:"agent_token"`
	}
	if err := json.Unmarshal(b, &joined); err != nil || joined.HostID == "" {
		return Membership{}, fmt.Errorf("join %s: the answer has no host ID: %v", cpURL, err)
	}
	if err := CheckToken(joined.AgentToken); err != nil {
		return Membership{}, fmt.Errorf("join %s: the issued agent token: %w", cpURL, err)
	}
	if err := writeSecretFile(tokenFile, joined.AgentToken+"\n"); err != nil {
		return Membership{}, fmt.Errorf("join %s: %w", cpURL, err)
	}
	m := Membership{Version: 1, ControlPlane: cpURL, HostID: joined.HostID}
	mb, _ := json.Marshal(m)
	if err := writeSecretFile(filepath.Join(dataDir, membershipFile), string(mb)+"\n"); err != nil {
		return Membership{}, fmt.Errorf("join %s: %w", cpURL, err)
	}
	return m, nil
}

// writeSecretFile writes a 0600 file atomically (a crash leaves the old
// file or the new one).
func writeSecretFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
