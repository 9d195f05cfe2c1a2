package controlplane

import (
	"context"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/proto/agentpb/agentpbconnect"
)

// SingleHost is the host set of a one-machine platform: one agent at a
// known address. (Fleets register hosts in the store instead.)
type SingleHost struct {
	host lifecycle.Host
}

// NewSingleHost returns the host set of the agent at url (e.g.
// http://127.0.0.1:5007), known as id.
func NewSingleHost(id, url string) *SingleHost {
	url = strings.TrimRight(url, "/")
	var p http.Protocols
	p.SetHTTP1(true) // no head-of-line blocking between unrelated calls
	hc := &http.Client{Transport: &http.Transport{
		Protocols:             &p,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute, // a create may build a template
	}}
	return &SingleHost{host: lifecycle.Host{
		ID:       id,
		Agent:    agentpbconnect.NewAgentClient(hc, url, connect.WithProtoJSON()),
		ProxyURL: url,
	}}
}

// Pick returns the one host.
func (s *SingleHost) Pick(ctx context.Context, req nestbox.CreateCapsuleRequest) (lifecycle.Host, error) {
	return s.host, nil
}

// Get returns the host if id is its ID.
func (s *SingleHost) Get(id string) (lifecycle.Host, error) {
	if id != s.host.ID {
		return lifecycle.Host{}, errdefs.NotFound("host %q not found", id)
	}
	return s.host, nil
}

// All returns the one host.
func (s *SingleHost) All() []lifecycle.Host { return []lifecycle.Host{s.host} }
