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

// TestFork drives Fork against a server that answers with one fork
// starting (running after two reads) and one refused, and checks the body
// sent, the wait and the refused fork's error.
func TestFork(t *testing.T) {
	var (
		mu    sync.Mutex
		reads int
		req   nestbox.ForkRequest
	)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/capsules/cap1/fork":
			decodeBody(t, r, &req)
			writeJSON(w, http.StatusAccepted, nestbox.ForkResponse{
				Source: nestbox.Capsule{ID: "cap1", Status: nestbox.StatusRunning},
				Forks: []nestbox.ForkResult{
					{Capsule: &nestbox.Capsule{ID: "fork1", Status: nestbox.StatusStarting}},
					{Error: &nestbox.ErrorDetail{Code: "resource_exhausted", Message: "team quota"}},
				},
			})
		case r.Method == http.MethodGet && r.URL.Path == "/v1/capsules/fork1":
			st := nestbox.StatusStarting
			if reads++; reads > 2 {
				st = nestbox.StatusRunning
			}
			writeJSON(w, http.StatusOK, nestbox.Capsule{ID: "fork1", Status: st})
		default:
			writeError(w, http.StatusNotFound, "not_found", r.Method+" "+r.URL.Path)
		}
	}))
	forks, err := c.Capsule("cap1").Fork(context.Background(), 2, 90*time.Second)
	if err != nil || len(forks) != 2 {
		t.Fatalf("Fork = %v, %v; want 2 results", forks, err)
	}
	if req.Count != 2 || req.TimeoutSeconds != 90 {
		t.Errorf("fork body %+v, want count 2 and 90 s", req)
	}
	if forks[0].Capsule == nil || forks[0].Capsule.Status != nestbox.StatusRunning {
		t.Errorf("first fork %+v, want waited for until running", forks[0])
	}
	if forks[1].Error == nil || forks[1].Error.Code != "resource_exhausted" {
		t.Errorf("second fork %+v, want its error", forks[1])
	}
	if _, err := c.Capsule("cap1").Fork(context.Background(), 0, 0); !errors.Is(err, nestbox.ErrInvalid) {
		t.Errorf("Fork(0) = %v, want ErrInvalid", err)
	}
}
