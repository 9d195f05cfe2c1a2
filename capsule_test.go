package nestbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
)

// fakeLifecycle serves create, get (with ?wait) and delete of one capsule
// whose status follows a script: each wait call answers the next status.
type fakeLifecycle struct {
	t *testing.T

	mu      sync.Mutex
	created nestbox.CreateCapsuleRequest
	script  []nestbox.Status // answered by successive wait calls
	waits   []string         // the ?wait= of each GET
	deletes int
}

func (f *fakeLifecycle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/capsules":
		decodeBody(f.t, r, &f.created)
		writeJSON(w, http.StatusAccepted, nestbox.Capsule{ID: "cap1", Status: nestbox.StatusStarting, Template: f.created.Template})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/capsules/cap1":
		f.waits = append(f.waits, r.URL.Query().Get("wait"))
		if _, err := time.ParseDuration(r.URL.Query().Get("timeout")); r.URL.Query().Has("wait") && err != nil {
			f.t.Errorf("wait timeout %q: %v", r.URL.Query().Get("timeout"), err)
		}
		st := f.script[0]
		if len(f.script) > 1 {
			f.script = f.script[1:]
		}
		cp := nestbox.Capsule{ID: "cap1", Status: st}
		if st == nestbox.StatusError {
			cp.Error = "rootfs: no space left"
		}
		writeJSON(w, http.StatusOK, cp)
	case r.Method == http.MethodDelete && r.URL.Path == "/v1/capsules/cap1":
		f.deletes++
		writeJSON(w, http.StatusAccepted, nestbox.Capsule{ID: "cap1", Status: nestbox.StatusStopping})
	default:
		writeError(w, http.StatusNotFound, "not_found", r.Method+" "+r.URL.Path)
	}
}

func TestCreateWaitsUntilRunning(t *testing.T) {
	f := &fakeLifecycle{t: t, script: []nestbox.Status{nestbox.StatusStarting, nestbox.StatusRunning}}
	c := newTestClient(t, f)
	no := false
	req := nestbox.CreateCapsuleRequest{Template: "base", VCPUs: 2, Internet: &no, EnvVars: map[string]string{"A": "1"}}
	h, err := c.Create(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if h.ID() != "cap1" {
		t.Errorf("ID = %q, want cap1", h.ID())
	}
	if !reflect.DeepEqual(f.created, req) {
		t.Errorf("server got %+v, want %+v", f.created, req)
	}
	if want := []string{"running", "running"}; !reflect.DeepEqual(f.waits, want) {
		t.Errorf("wait calls %q, want %q", f.waits, want)
	}
}

func TestCreateReportsFailure(t *testing.T) {
	f := &fakeLifecycle{t: t, script: []nestbox.Status{nestbox.StatusError}}
	c := newTestClient(t, f)
	h, err := c.Create(context.Background(), nestbox.CreateCapsuleRequest{})
	var ce *nestbox.CapsuleError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *CapsuleError", err)
	}
	if ce.Capsule.Error != "rootfs: no space left" || ce.Want != nestbox.StatusRunning {
		t.Errorf("CapsuleError = %+v", ce)
	}
	if want := "capsule cap1 failed: rootfs: no space left"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	if h == nil || h.ID() != "cap1" {
		t.Errorf("handle = %v, want one for cap1 to clean up", h)
	}
}

func TestCreateNoWait(t *testing.T) {
	f := &fakeLifecycle{t: t, script: []nestbox.Status{nestbox.StatusRunning}}
	c := newTestClient(t, f)
	if _, err := c.Create(context.Background(), nestbox.CreateCapsuleRequest{}, nestbox.NoWait()); err != nil {
		t.Fatal(err)
	}
	if len(f.waits) != 0 {
		t.Errorf("NoWait made wait calls %q", f.waits)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	// A server that ignores ?wait answers at once, forever "starting".
	f := &fakeLifecycle{t: t, script: []nestbox.Status{nestbox.StatusStarting}}
	c := newTestClient(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := c.Capsule("cap1").Wait(ctx, nestbox.StatusRunning)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if n := len(f.waits); n > 10 {
		t.Errorf("%d wait calls in 300ms: polling without a pause", n)
	}
}

func TestKillWaitsForFinalStatus(t *testing.T) {
	for _, final := range []nestbox.Status{nestbox.StatusStopped, nestbox.StatusError} {
		f := &fakeLifecycle{t: t, script: []nestbox.Status{nestbox.StatusStopping, final}}
		c := newTestClient(t, f)
		cp, err := c.Capsule("cap1").Kill(context.Background())
		if err != nil {
			t.Fatalf("Kill ending in %s: %v", final, err)
		}
		if cp.Status != final || f.deletes != 1 {
			t.Errorf("Kill ending in %s: got status %s after %d deletes", final, cp.Status, f.deletes)
		}
		if want := []string{"stopped", "stopped"}; !reflect.DeepEqual(f.waits, want) {
			t.Errorf("wait calls %q, want %q", f.waits, want)
		}
	}
}

func TestListAllFollowsCursors(t *testing.T) {
	const total, pageSize = 5, 2
	var queries []string
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		queries = append(queries, r.URL.RawQuery)
		if q.Get("status") != "running,starting" || q.Get("metadata.owner") != "me" || q.Get("limit") != "2" {
			t.Errorf("query %q lacks the filters", r.URL.RawQuery)
		}
		start := 0
		if cur := q.Get("cursor"); cur != "" {
			start, _ = strconv.Atoi(cur)
		}
		var l nestbox.CapsuleList
		for i := start; i < min(start+pageSize, total); i++ {
			l.Capsules = append(l.Capsules, nestbox.Capsule{ID: fmt.Sprintf("c%d", i)})
		}
		if start+pageSize < total {
			l.NextCursor = strconv.Itoa(start + pageSize)
		}
		writeJSON(w, http.StatusOK, l)
	}))
	opts := nestbox.ListOptions{
		Status:   []nestbox.Status{nestbox.StatusRunning, nestbox.StatusStarting},
		Metadata: map[string]string{"owner": "me"},
		Limit:    pageSize,
	}
	var ids []string
	for cp, err := range c.ListAll(context.Background(), opts) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cp.ID)
	}
	if want := []string{"c0", "c1", "c2", "c3", "c4"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids = %q, want %q", ids, want)
	}
	if len(queries) != 3 {
		t.Errorf("%d page requests, want 3: %q", len(queries), queries)
	}

	// Breaking out of the loop stops fetching pages.
	queries = nil
	for range c.ListAll(context.Background(), opts) {
		break
	}
	if len(queries) != 1 {
		t.Errorf("%d page requests after break, want 1", len(queries))
	}
}

func TestListAllYieldsError(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "store down")
	}))
	n := 0
	for _, err := range c.ListAll(context.Background(), nestbox.ListOptions{}) {
		n++
		if !errors.Is(err, nestbox.ErrUnavailable) {
			t.Errorf("err = %v, want ErrUnavailable", err)
		}
	}
	if n != 1 {
		t.Errorf("yielded %d times, want 1", n)
	}
}

func TestSetTimeout(t *testing.T) {
	var got nestbox.SetTimeoutRequest
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/capsules/cap1/timeout" || r.Method != http.MethodPost {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		decodeBody(t, r, &got)
		writeJSON(w, http.StatusOK, nestbox.Capsule{ID: "cap1"})
	}))
	h := c.Capsule("cap1")
	if _, err := h.SetTimeout(context.Background(), 90500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got.TimeoutSeconds != 91 {
		t.Errorf("timeout_seconds = %d, want 91", got.TimeoutSeconds)
	}
	if _, err := h.SetTimeout(context.Background(), 0); !errors.Is(err, nestbox.ErrInvalid) {
		t.Errorf("SetTimeout(0): err = %v, want ErrInvalid", err)
	}
}
