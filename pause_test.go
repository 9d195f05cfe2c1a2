package nestbox_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
)

// TestPauseResume drives Pause and Resume against a server whose capsule
// stays in its transient status for two reads, and checks the bodies sent
// and that each call waits until the change has ended.
func TestPauseResume(t *testing.T) {
	var (
		mu     sync.Mutex
		status = nestbox.StatusRunning
		reads  int
		pause  nestbox.PauseRequest
		resume nestbox.ResumeRequest
	)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/capsules/cap1/pause":
			if status == nestbox.StatusPaused {
				writeError(w, http.StatusConflict, "conflict", "capsule cap1 is already paused")
				return
			}
			decodeBody(t, r, &pause)
			status, reads = nestbox.StatusPausing, 0
		case r.Method == http.MethodPost && r.URL.Path == "/v1/capsules/cap1/resume":
			decodeBody(t, r, &resume)
			status, reads = nestbox.StatusResuming, 0
		case r.Method == http.MethodGet && r.URL.Path == "/v1/capsules/cap1":
			if reads++; reads > 2 {
				status = map[nestbox.Status]nestbox.Status{nestbox.StatusPausing: nestbox.StatusPaused, nestbox.StatusResuming: nestbox.StatusRunning}[status]
			}
		default:
			writeError(w, http.StatusNotFound, "not_found", r.Method+" "+r.URL.Path)
			return
		}
		code := http.StatusOK
		if r.Method == http.MethodPost {
			code = http.StatusAccepted
		}
		writeJSON(w, code, nestbox.Capsule{ID: "cap1", Status: status})
	}))
	ctx := context.Background()
	h := c.Capsule("cap1")
	cp, err := h.Pause(ctx, false)
	if err != nil || cp.Status != nestbox.StatusPaused {
		t.Fatalf("Pause = %s, %v; want paused", cp.Status, err)
	}
	if pause.Memory == nil || *pause.Memory {
		t.Errorf("pause body memory = %v, want false", pause.Memory)
	}
	if _, err := h.Pause(ctx, true); !errors.Is(err, nestbox.ErrConflict) {
		t.Errorf("Pause of a paused capsule: %v, want ErrConflict", err)
	}
	cp, err = h.Resume(ctx, 90500*time.Millisecond)
	if err != nil || cp.Status != nestbox.StatusRunning {
		t.Fatalf("Resume = %s, %v; want running", cp.Status, err)
	}
	if resume.TimeoutSeconds != 91 {
		t.Errorf("resume timeout_seconds = %d, want 91", resume.TimeoutSeconds)
	}
	if _, err := h.Resume(ctx, -time.Second); !errors.Is(err, nestbox.ErrInvalid) {
		t.Errorf("Resume(-1s): %v, want ErrInvalid", err)
	}
	cp, err = h.Pause(ctx, true, nestbox.NoWait())
	if err != nil || cp.Status != nestbox.StatusPausing {
		t.Errorf("Pause(NoWait) = %s, %v; want pausing at once", cp.Status, err)
	}
}
