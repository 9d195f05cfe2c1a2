package nestbox_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"nestbox.dev"
)

// TestSnapshot drives Handle.Snapshot, Snapshots, GetSnapshot,
// DeleteSnapshot and CreateTemplate against a server that answers a
// snapshot creating and ready on the second wait, and checks the bodies
// and queries sent and the errors returned.
func TestSnapshot(t *testing.T) {
	var (
		mu    sync.Mutex
		waits int
		req   nestbox.CreateSnapshotRequest
		tpl   nestbox.CreateTemplateRequest
		query string
	)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/capsules/cap1/snapshots":
			decodeBody(t, r, &req)
			writeJSON(w, http.StatusAccepted, nestbox.Snapshot{ID: "snap1", Name: "env:default", Status: nestbox.SnapshotCreating})
		case r.Method == http.MethodPost && r.URL.Path == "/v1/capsules/paused/snapshots":
			writeError(w, http.StatusConflict, "conflict", "capsule paused is paused, not running")
		case r.Method == http.MethodGet && r.URL.Path == "/v1/snapshots/snap1":
			if r.URL.Query().Get("wait") != "true" {
				t.Errorf("wait for the snapshot without ?wait=true: %s", r.URL.RawQuery)
			}
			st := nestbox.SnapshotCreating
			if waits++; waits > 1 {
				st = nestbox.SnapshotReady
			}
			writeJSON(w, http.StatusOK, nestbox.Snapshot{ID: "snap1", Status: st})
		case r.Method == http.MethodGet && r.URL.Path == "/v1/snapshots":
			query = r.URL.RawQuery
			writeJSON(w, http.StatusOK, nestbox.SnapshotList{Snapshots: []nestbox.Snapshot{{ID: "snap1"}}, NextCursor: "c2"})
		case r.Method == http.MethodDelete && r.URL.Path == "/v1/snapshots/env:v1":
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodDelete && r.URL.Path == "/v1/snapshots/held":
			writeError(w, http.StatusConflict, "conflict", "snapshot held backs template t")
		case r.Method == http.MethodPost && r.URL.Path == "/v1/templates":
			decodeBody(t, r, &tpl)
			writeJSON(w, http.StatusCreated, nestbox.Template{Name: tpl.Name, SnapshotID: "snap1"})
		default:
			writeError(w, http.StatusNotFound, "not_found", r.Method+" "+r.URL.Path)
		}
	}))
	ctx := context.Background()
	sn, err := c.Capsule("cap1").Snapshot(ctx, nestbox.SnapshotOptions{Name: "env", Pause: true})
	if err != nil || sn.Status != nestbox.SnapshotReady || waits != 2 {
		t.Fatalf("Snapshot = %+v, %v after %d waits; want ready after 2", sn, err, waits)
	}
	if req.Name != "env" || !req.Pause {
		t.Errorf("snapshot body %+v, want name env and pause", req)
	}
	if sn, err := c.Capsule("cap1").Snapshot(ctx, nestbox.SnapshotOptions{}, nestbox.NoWait()); err != nil || sn.Status != nestbox.SnapshotCreating {
		t.Errorf("Snapshot with NoWait = %+v, %v; want it creating", sn, err)
	}
	if _, err := c.Capsule("paused").Snapshot(ctx, nestbox.SnapshotOptions{}); !errors.Is(err, nestbox.ErrConflict) {
		t.Errorf("Snapshot of a paused capsule: %v, want ErrConflict", err)
	}
	l, err := c.Snapshots(ctx, nestbox.SnapshotListOptions{CapsuleID: "cap1", Name: "env", Limit: 5, Cursor: "c1"})
	if err != nil || len(l.Snapshots) != 1 || l.NextCursor != "c2" || query != "capsule_id=cap1&cursor=c1&limit=5&name=env" {
		t.Errorf("Snapshots = %+v, %v with query %q", l, err, query)
	}
	if err := c.DeleteSnapshot(ctx, "env:v1"); err != nil {
		t.Errorf("DeleteSnapshot: %v", err)
	}
	if err := c.DeleteSnapshot(ctx, "held"); !errors.Is(err, nestbox.ErrConflict) {
		t.Errorf("DeleteSnapshot of a template's snapshot: %v, want ErrConflict", err)
	}
	if _, err := c.GetSnapshot(ctx, "nope"); !errors.Is(err, nestbox.ErrNotFound) {
		t.Errorf("GetSnapshot(nope): %v, want ErrNotFound", err)
	}
	if got, err := c.CreateTemplate(ctx, "my-env", "env"); err != nil || got.SnapshotID != "snap1" || tpl != (nestbox.CreateTemplateRequest{Name: "my-env", FromSnapshot: "env"}) {
		t.Errorf("CreateTemplate = %+v, %v with body %+v", got, err, tpl)
	}
}
