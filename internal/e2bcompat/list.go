package e2bcompat

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Page sizes of GET /v2/sandboxes, as E2B's API has them.
const (
	defaultListLimit = 100
	maxListLimit     = 100
)

// The statuses E2B's lists show as "running" and as "paused" (see state).
var (
	liveStatuses   = []nestbox.Status{nestbox.StatusRunning, nestbox.StatusStarting, nestbox.StatusResuming}
	pausedStatuses = []nestbox.Status{nestbox.StatusPaused, nestbox.StatusPausing}
)

// listV2 serves GET /v2/sandboxes: ?metadata=k%3Dv%26k2%3Dv2, ?state=
// (running, paused; both by default), ?limit=, ?nextToken=, ?order=asc|desc
// (desc by default), ?template=, ?startedAfter=. The next page's token is
// the X-Next-Token header.
func (a *API) listV2(w http.ResponseWriter, r *http.Request) {
	f, err := parseList(r.URL.Query())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := []listed{}
	list, err := a.life.List(r.Context(), team(r), f)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	for _, c := range list.Capsules {
		out = append(out, listedOf(c))
	}
	if list.NextCursor != "" {
		w.Header().Set("X-Next-Token", list.NextCursor)
	}
	writeJSON(w, http.StatusOK, out)
}

// listV1 serves the older GET /sandboxes: every running sandbox of the
// team, unpaged, with the same ?metadata filter.
func (a *API) listV1(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.CapsuleFilter{Statuses: liveStatuses, Limit: 1000}
	var err error
	if f.Metadata, err = parseMetadata(q.Get("metadata")); err != nil {
		a.writeError(w, r, err)
		return
	}
	out := []listed{}
	for {
		list, err := a.life.List(r.Context(), team(r), f)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		for _, c := range list.Capsules {
			out = append(out, listedOf(c))
		}
		if list.NextCursor == "" {
			break
		}
		f.Cursor = list.NextCursor
	}
	writeJSON(w, http.StatusOK, out)
}

// parseList reads the query of GET /v2/sandboxes.
// startedAfter is a filter of the store's query, on the start the answer
// reports, so that every page but the last is full.
func parseList(q url.Values) (store.CapsuleFilter, error) {
	f := store.CapsuleFilter{Statuses: liveStatuses, Limit: defaultListLimit, Template: q.Get("template"), Cursor: q.Get("nextToken")}
	var err error
	if f.Metadata, err = parseMetadata(q.Get("metadata")); err != nil {
		return f, err
	}
	// Both states by default: running and paused sandboxes page together,
	// in one query.
	running, paused := true, true
	if states := q["state"]; len(states) > 0 {
		running, paused = false, false
		for _, s := range states {
			for _, st := range strings.Split(s, ",") {
				switch strings.TrimSpace(st) {
				case "running":
					running = true
				case "paused":
					paused = true
				default:
					return f, errdefs.Invalid("state %q: want running or paused", st)
				}
			}
		}
	}
	f.Statuses = nil
	if running {
		f.Statuses = append(f.Statuses, liveStatuses...)
	}
	if paused {
		f.Statuses = append(f.Statuses, pausedStatuses...)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return f, errdefs.Invalid("limit %q: want 1 to %d", v, maxListLimit)
		}
		f.Limit = n
	}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		f.Oldest = true
	default:
		return f, errdefs.Invalid("order %q: want asc or desc", q.Get("order"))
	}
	if v := q.Get("startedAfter"); v != "" {
		if f.StartedAfter, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return f, errdefs.Invalid("startedAfter %q: want an RFC 3339 time", v)
		}
	}
	return f, nil
}

// parseMetadata reads E2B's metadata filter: "k=v&k2=v2", each key and
// value URL-encoded.
func parseMetadata(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	vals, err := url.ParseQuery(s)
	if err != nil {
		return nil, errdefs.Invalid("metadata %q: want key=value pairs joined by &", s)
	}
	m := make(map[string]string, len(vals))
	for k, v := range vals {
		m[k] = v[len(v)-1]
	}
	return m, nil
}
