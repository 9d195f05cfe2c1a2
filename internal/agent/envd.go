package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/agentpb"
)

// envdClient is how the agent itself talks to envd (readiness and /init).
// It has its own transport, separate from the proxy's, with a response
// header timeout: envd answers these calls at once or not at all.
type envdClient struct {
	http *http.Client
}

// newEnvdClient returns a client whose sockets are prepared by control
// (Network.DialControl: marked, so that the host's rules let them reach a
// sandbox).
func newEnvdClient(control func(network, address string, c syscall.RawConn) error) *envdClient {
	return &envdClient{http: &http.Client{
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second, Control: control}).DialContext,
			ResponseHeaderTimeout: 10 * time.Second,
			// Polling opens a connection per attempt; none is worth keeping.
			DisableKeepAlives: true,
			ForceAttemptHTTP2: false,
		},
	}}
}

func envdURL(ip netip.Addr, path string) string {
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(EnvdPort)) + path
}

// healthy reports whether envd at ip answers GET /health with 204 within
// timeout.
func (c *envdClient) healthy(ctx context.Context, ip netip.Addr, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, envdURL(ip, "/health"), nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusNoContent
}

// waitHealthy polls envd's /health until it answers 204 or ctx is done.
func (c *envdClient) waitHealthy(ctx context.Context, ip netip.Addr) error {
	delay := 5 * time.Millisecond
	for {
		if c.healthy(ctx, ip, time.Second) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// initRequest is the body of envd's POST /init.
type initRequest struct {
	EnvVars        map[string]string `json:"envVars,omitempty"`
	AccessToken    *string           `json:"accessToken,omitempty"`
	DefaultUser    string            `json:"defaultUser,omitempty"`
	DefaultWorkdir string            `json:"defaultWorkdir,omitempty"`
	Timestamp      time.Time         `json:"timestamp"`
}

// sendInit sends the sandbox's env vars, access token, default user and
// workdir to envd: the /init of a sandbox that starts fresh.
func (c *envdClient) sendInit(ctx context.Context, ip netip.Addr, cfg *agentpb.SandboxConfig) error {
	body := initRequest{
		EnvVars:        cfg.EnvVars,
		DefaultUser:    cfg.DefaultUser,
		DefaultWorkdir: cfg.DefaultWorkdir,
		Timestamp:      time.Now().UTC(),
	}
	if cfg.AccessToken != "" {
		body.AccessToken = &cfg.AccessToken
	}
	return c.postInit(ctx, ip, "", body, 30*time.Second)
}

// postRestoreInit is envd's initialisation after a restore: one /init
// that undoes the snapshot preparation and carries the defaults (user,
// workdir, a fresh timestamp) in the same call. envd kept its env vars and
// token in memory; token authenticates the call. timeout is its own
// bound, apart from the readiness wait before it.
func (c *envdClient) postRestoreInit(ctx context.Context, ip netip.Addr, cfg *agentpb.SandboxConfig, timeout time.Duration) error {
	body := initRequest{
		DefaultUser:    cfg.DefaultUser,
		DefaultWorkdir: cfg.DefaultWorkdir,
		Timestamp:      time.Now().UTC(),
	}
	return c.postInit(ctx, ip, cfg.AccessToken, body, timeout)
}

// forkInit is the post-restore /init of a fork or of a sandbox started
// from a snapshot: authenticated with the source's token (oldToken),
// which the restored envd still holds, it replaces that token with the
// new sandbox's (cfg.AccessToken; "" leaves it without one, as a create
// without a token does), adds cfg.EnvVars to envd's (a fork's are the
// source's already) and carries the defaults, as postRestoreInit does. From its answer on, the source's
// token no longer works in the fork.
func (c *envdClient) forkInit(ctx context.Context, ip netip.Addr, oldToken string, cfg *agentpb.SandboxConfig, timeout time.Duration) error {
	token := cfg.AccessToken
	body := initRequest{
		EnvVars:        cfg.EnvVars,
		AccessToken:    &token,
		DefaultUser:    cfg.DefaultUser,
		DefaultWorkdir: cfg.DefaultWorkdir,
		Timestamp:      time.Now().UTC(),
	}
	return c.postInit(ctx, ip, oldToken, body, timeout)
}

// prepareSnapshot asks envd to get ready for a checkpoint (flush the
// sandbox's files, close idle connections, collect its heap), bounded by
// prepareTimeout.
func (c *envdClient) prepareSnapshot(ctx context.Context, ip netip.Addr, token string) error {
	ctx, cancel := context.WithTimeout(ctx, prepareTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, envdURL(ip, "/snapshot/prepare"), nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("envd snapshot prepare: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("envd snapshot prepare: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// prepareTimeout bounds envd's snapshot preparation.
const prepareTimeout = 30 * time.Second

func (c *envdClient) postInit(ctx context.Context, ip netip.Addr, token string, body initRequest, timeout time.Duration) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, envdURL(ip, "/init"), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("envd init: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusBadRequest:
		// An unknown default user, say: the request's fault.
		return errdefs.Invalid("envd init: %s", strings.TrimSpace(string(msg)))
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("envd init: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
