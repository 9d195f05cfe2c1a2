package e2bcompat

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/lifecycle"
)

// snapshotInfo is E2B's SnapshotInfo. snapshotID is the snapshot's name
// ("name:tag") if it has one, else its ID with the default tag
// ("<id>:default"), as E2B falls back to the raw template ID; both forms
// start a sandbox (templateID) and delete the snapshot.
type snapshotInfo struct {
	SnapshotID string   `json:"snapshotID"`
	Names      []string `json:"names"`
}

func snapshotInfoOf(sn nestbox.Snapshot) snapshotInfo {
	id := sn.Name
	if id == "" {
		id = sn.ID + ":" + lifecycle.DefaultSnapshotTag
	}
	return snapshotInfo{SnapshotID: id, Names: []string{id}}
}

// createSnapshot serves POST /sandboxes/{id}/snapshots {name?}: 201 once
// the snapshot is ready. The sandbox runs on.
func (a *API) createSnapshot(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(w, r, &req, true); err != nil {
		a.writeError(w, r, err)
		return
	}
	c, err := a.running(r)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	sn, err := a.life.Snapshot(r.Context(), team(r), c.ID, lifecycle.SnapshotOptions{Name: req.Name})
	a.record(r, "snapshot.create", sn.ID, err)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.StartTimeout)
	defer cancel()
	sn, err = a.life.WaitSnapshot(ctx, team(r), sn.ID)
	switch {
	case err != nil:
		a.writeError(w, r, err)
	case sn.Status != nestbox.SnapshotReady:
		a.writeError(w, r, errdefs.Unavailable("snapshot %s is %s after %s", sn.ID, sn.Status, a.cfg.StartTimeout))
	default:
		writeJSON(w, http.StatusCreated, snapshotInfoOf(sn))
	}
}

// listSnapshots serves GET /snapshots: ?sandboxID, ?name (a name or ID,
// optionally tag-qualified), ?limit (1 to 100), ?nextToken; the next
// page's token is the X-Next-Token header.
func (a *API) listSnapshots(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := lifecycle.SnapshotFilter{CapsuleID: q.Get("sandboxID"), Cursor: q.Get("nextToken"), Limit: defaultListLimit}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			a.writeError(w, r, errdefs.Invalid("limit %q: want 1 to %d", v, maxListLimit))
			return
		}
		f.Limit = n
	}
	out := []snapshotInfo{}
	if name := q.Get("name"); name != "" {
		// A name or an ID names one snapshot at most: one page.
		sn, err := a.life.GetSnapshot(r.Context(), team(r), name)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
		case err != nil:
			a.writeError(w, r, err)
			return
		case f.CapsuleID == "" || sn.CapsuleID == f.CapsuleID:
			out = append(out, snapshotInfoOf(sn))
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	list, err := a.life.ListSnapshots(r.Context(), team(r), f)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	for _, sn := range list.Snapshots {
		out = append(out, snapshotInfoOf(sn))
	}
	if list.NextCursor != "" {
		w.Header().Set("X-Next-Token", list.NextCursor)
	}
	writeJSON(w, http.StatusOK, out)
}

// deleteTemplate serves DELETE /templates/{id}, which E2B's SDK calls to
// delete a snapshot (deleteSnapshot): 204, or 404 for a snapshot the team
// does not have. Templates themselves are not deleted this way.
func (a *API) deleteTemplate(w http.ResponseWriter, r *http.Request) {
	err := a.life.DeleteSnapshot(r.Context(), team(r), r.PathValue("id"))
	a.record(r, "snapshot.delete", r.PathValue("id"), err)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
