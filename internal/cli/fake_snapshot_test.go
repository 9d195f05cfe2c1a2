package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"nestbox.dev"
)

// snapshotRoutes serves the snapshot routes of the fake: a snapshot is
// ready at once, names are unique, a snapshot that backs a template cannot
// be deleted.
func (f *fakeServer) snapshotRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/capsules/{id}/snapshots", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		c := f.capsule(w, r)
		if c == nil {
			return
		}
		var req nestbox.CreateSnapshotRequest
		json.NewDecoder(r.Body).Decode(&req)
		f.snapshotReqs = append(f.snapshotReqs, req)
		name := req.Name
		if name != "" {
			name += ":default"
		}
		for _, sn := range f.snapshots {
			if name != "" && sn.Name == name {
				fakeError(w, http.StatusConflict, "already_exists", "snapshot name taken")
				return
			}
		}
		sn := &nestbox.Snapshot{ID: fmt.Sprintf("snap%d", len(f.snapshots)+1), Name: name, CapsuleID: c.ID, Status: nestbox.SnapshotReady, SizeBytes: 600 << 20, CreatedAt: time.Now()}
		f.snapshots = append(f.snapshots, sn)
		code := http.StatusAccepted
		if r.URL.Query().Get("wait") == "true" {
			code = http.StatusCreated
		}
		fakeJSON(w, code, sn)
	})
	mux.HandleFunc("GET /v1/snapshots", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.snapshotQuery = append(f.snapshotQuery, r.URL.RawQuery)
		out := nestbox.SnapshotList{Snapshots: []nestbox.Snapshot{}}
		for _, sn := range f.snapshots {
			if cid := r.URL.Query().Get("capsule_id"); cid == "" || sn.CapsuleID == cid {
				out.Snapshots = append(out.Snapshots, *sn)
			}
		}
		fakeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /v1/snapshots/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if sn := f.snapshot(r.PathValue("id")); sn != nil {
			fakeJSON(w, http.StatusOK, sn)
			return
		}
		fakeError(w, http.StatusNotFound, "not_found", "no snapshot")
	})
	mux.HandleFunc("DELETE /v1/snapshots/{id}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, sn := range f.snapshots {
			if sn.ID == r.PathValue("id") || sn.Name == r.PathValue("id") {
				if sn.TemplateName != "" {
					fakeError(w, http.StatusConflict, "conflict", "snapshot backs template "+sn.TemplateName)
					return
				}
				f.snapshots = append(f.snapshots[:i], f.snapshots[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		fakeError(w, http.StatusNotFound, "not_found", "no snapshot")
	})
	mux.HandleFunc("POST /v1/templates", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var req nestbox.CreateTemplateRequest
		json.NewDecoder(r.Body).Decode(&req)
		sn := f.snapshot(req.FromSnapshot)
		if sn == nil {
			fakeError(w, http.StatusNotFound, "not_found", "no snapshot "+req.FromSnapshot)
			return
		}
		sn.TemplateName = req.Name
		fakeJSON(w, http.StatusCreated, nestbox.Template{Name: req.Name, SnapshotID: sn.ID})
	})
	mux.HandleFunc("PUT /v1/templates/{name}/pool", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var req nestbox.TemplatePoolRequest
		json.NewDecoder(r.Body).Decode(&req)
		f.poolReqs = append(f.poolReqs, req)
		for _, sn := range f.snapshots {
			if sn.TemplateName == r.PathValue("name") {
				fakeJSON(w, http.StatusOK, nestbox.Template{Name: sn.TemplateName, SnapshotID: sn.ID, PoolSize: req.Size})
				return
			}
		}
		fakeError(w, http.StatusNotFound, "not_found", "no template")
	})
	mux.HandleFunc("DELETE /v1/templates/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, sn := range f.snapshots {
			if sn.TemplateName == r.PathValue("name") {
				sn.TemplateName = ""
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		fakeError(w, http.StatusNotFound, "not_found", "no template")
	})
}

// snapshot finds a snapshot by ID or name. The caller holds f.mu.
func (f *fakeServer) snapshot(ref string) *nestbox.Snapshot {
	for _, sn := range f.snapshots {
		if sn.ID == ref || sn.Name == ref || sn.Name == ref+":default" {
			return sn
		}
	}
	return nil
}
