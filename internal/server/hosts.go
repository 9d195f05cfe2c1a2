package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/capsulestate"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/fleet"
	"nestbox.dev/internal/store"
)

// hostIDHeader names the host a fleet agent authenticates as, on its
// heartbeats and events (Authorization carries its events token).
const hostIDHeader = "Nestbox-Host-ID"

// fleetHandler is a handler of the fleet's routes.
type fleetHandler func(w http.ResponseWriter, r *http.Request, f *fleet.Registry)

// withFleet adapts h to the mux: on a control plane that drives one host
// (no Fleet), every fleet route answers 501 saying so.
func (s *Server) withFleet(h fleetHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Fleet == nil {
			s.writeError(w, r, errdefs.Unimplemented("this control plane drives one host (nestbox up, or nestbox server --agent-url); hosts register with a control plane started without --agent-url"))
			return
		}
		h(w, r, s.cfg.Fleet)
	}
}

// registerHost is POST /v1/hosts/register: an agent joins with a join
// token (Authorization: Bearer nbj_...) and gets its host ID and agent
// token.
func (s *Server) registerHost(w http.ResponseWriter, r *http.Request, f *fleet.Registry) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !fleet.IsJoinToken(strings.TrimSpace(tok)) {
		s.writeError(w, r, errdefs.Unauthenticated("a join token (Authorization: Bearer nbj_...) is required: make one with `nestbox host token create`"))
		return
	}
	var reg fleet.Registration
	if err := s.decodeJSON(w, r, &reg, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	joined, err := f.Register(r.Context(), strings.TrimSpace(tok), reg)
	if err != nil {
		// Not recorded: whoever sends a bad token is no one the platform
		// knows, and their attempts must not grow the admins' log.
		s.writeError(w, r, err)
		return
	}
	// A host joining is a change of the platform, by no user: the token
	// that let it in was an admin's (join_token.create).
	s.record(r, adminEntry("host.register", joined.HostID, map[string]string{"name": reg.Name, "url": reg.URL}), nil)
	writeJSON(w, http.StatusCreated, joined)
}

// heartbeat is the body of POST /v1/hosts/heartbeat.
type heartbeat struct {
	URL      string               `json:"url"`
	Capacity nestbox.HostCapacity `json:"capacity"`
}

// heartbeatAnswer tells the agent its scheduling state and when to beat.
type heartbeatAnswer struct {
	State             store.HostState `json:"state"`
	HeartbeatInterval int             `json:"heartbeat_interval_seconds"`
}

func (s *Server) hostHeartbeat(w http.ResponseWriter, r *http.Request, f *fleet.Registry) {
	var hb heartbeat
	if err := s.decodeJSON(w, r, &hb, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	st, err := f.Heartbeat(r.Context(), authenticatedHost(r), hb.URL, hb.Capacity)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, heartbeatAnswer{State: st, HeartbeatInterval: int(f.HeartbeatInterval() / time.Second)})
}

// fleetHost authenticates a fleet agent by its host ID header and events
// token; ok is false when the request names no host.
func (s *Server) fleetHost(r *http.Request) (id string, named, ok bool) {
	id = r.Header.Get(hostIDHeader)
	if id == "" || s.cfg.Fleet == nil {
		return "", false, false
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return id, true, s.cfg.Fleet.AuthenticateHost(r.Context(), id, tok)
}

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request, f *fleet.Registry) {
	hs, err := f.Hosts(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	live, err := s.liveByHost(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := nestbox.HostList{Hosts: []nestbox.Host{}}
	for _, h := range hs {
		out.Hosts = append(out.Hosts, hostView(h, live[h.ID]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request, f *fleet.Registry) {
	h, err := f.Host(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	live, err := s.liveByHost(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, hostView(h, live[h.ID]))
}

// hostAction is the audit action that sets scheduling state st.
func hostAction(st store.HostState) string {
	switch st {
	case store.HostCordoned:
		return "host.cordon"
	case store.HostDraining:
		return "host.drain"
	}
	return "host.uncordon"
}

// setHostState returns the handler of POST /v1/hosts/{id}/{action}.
func (s *Server) setHostState(st store.HostState) fleetHandler {
	return func(w http.ResponseWriter, r *http.Request, f *fleet.Registry) {
		id := r.PathValue("id")
		err := f.SetState(r.Context(), id, st)
		s.record(r, adminEntry(hostAction(st), id, nil), err)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.getHost(w, r, f)
	}
}

func (s *Server) removeHost(w http.ResponseWriter, r *http.Request, f *fleet.Registry) {
	id := r.PathValue("id")
	if _, err := f.Host(r.Context(), id); err != nil {
		s.writeError(w, r, err)
		return
	}
	live, err := s.liveByHost(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	err = f.Remove(r.Context(), id, live[id])
	s.record(r, adminEntry("host.remove", id, nil), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// liveByHost counts the capsules that have not ended on each host: one
// query of the store's status index (store.CountCapsules), whatever the
// number of hosts.
func (s *Server) liveByHost(ctx context.Context) (map[string]int, error) {
	counts, err := s.store.CountCapsules(ctx, capsulestate.LiveStatuses())
	if err != nil {
		return nil, err
	}
	by := map[string]int{}
	for _, c := range counts {
		by[c.HostID] += c.Count
	}
	return by, nil
}

// hostView is the admin's view of h, which has live capsules.
func hostView(h store.Host, live int) nestbox.Host {
	k := h.Capacity
	return nestbox.Host{
		ID: h.ID, Name: h.Name, URL: h.Address, State: string(h.State), Reachable: !h.Unreachable, Capsules: live,
		LastSeenAt: h.LastSeen, CreatedAt: h.Created,
		Capacity: nestbox.HostCapacity{
			Version: k.Version, Driver: k.Driver, CPUs: k.CPUs,
			MemoryTotalBytes: k.MemoryTotalBytes, MemoryAvailableBytes: k.MemoryAvailableBytes,
			MemoryReservedBytes: k.MemoryReservedBytes, MemoryAllocatedBytes: k.MemoryAllocatedBytes,
			MemoryCommitLimit: k.MemoryCommitLimit,
			DiskTotalBytes:    k.DiskTotalBytes, DiskAvailableBytes: k.DiskAvailableBytes,
			DiskReservedBytes: k.DiskReservedBytes, DiskAllocatedBytes: k.DiskAllocatedBytes,
			Sandboxes: k.Sandboxes, MaxSandboxes: k.MaxSandboxes, VCPUsAllocated: k.VCPUsAllocated,
			Running: k.Running, Paused: k.Paused, Templates: k.Templates, Snapshots: k.Snapshots,
		},
	}
}

func (s *Server) createJoinToken(w http.ResponseWriter, r *http.Request, f *fleet.Registry) {
	var req nestbox.CreateJoinTokenRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, _ := r.Context().Value(principalKey{}).(principal)
	secret, t, err := f.CreateJoinToken(r.Context(), p.Key.CreatedBy, time.Duration(req.TTLSeconds)*time.Second, req.Uses)
	s.record(r, adminEntry("join_token.create", t.ID, map[string]string{"uses": strconv.Itoa(t.UsesLeft)}), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v := publicJoinToken(t)
	v.Token = secret
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listJoinTokens(w http.ResponseWriter, r *http.Request, f *fleet.Registry) {
	ts, err := f.JoinTokens(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := nestbox.JoinTokenList{Tokens: []nestbox.JoinToken{}}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, publicJoinToken(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteJoinToken(w http.ResponseWriter, r *http.Request, f *fleet.Registry) {
	err := f.DeleteJoinToken(r.Context(), r.PathValue("id"))
	s.record(r, adminEntry("join_token.revoke", r.PathValue("id"), nil), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func publicJoinToken(t store.JoinToken) nestbox.JoinToken {
	return nestbox.JoinToken{ID: t.ID, CreatedAt: t.Created, ExpiresAt: t.Expires, UsesLeft: t.UsesLeft}
}
