package controlplane

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/events/memory"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

// droppingStream is an event stream whose subscriptions the test can end,
// as a stream that restarts does.
type droppingStream struct {
	events.Stream

	mu      sync.Mutex
	cancels []context.CancelFunc
}

func (s *droppingStream) Subscribe(ctx context.Context) (<-chan nestbox.CapsuleEvent, error) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.cancels = append(s.cancels, cancel)
	s.mu.Unlock()
	return s.Stream.Subscribe(ctx)
}

func (s *droppingStream) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cancel := range s.cancels {
		cancel()
	}
	s.cancels = nil
}

// TestForgetAfterGap: a capsule that ends while the event stream is down
// (its final event is missed) has its cached port proxies dropped once the
// stream is back (Follow's gap marker), while a running capsule keeps its.
func TestForgetAfterGap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateUser(ctx, store.User{ID: "u", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTeam(ctx, store.Team{ID: "team", Name: "team", CreatedAt: time.Now()}, "u"); err != nil {
		t.Fatal(err)
	}
	agentProxy := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer agentProxy.Close()
	ev := &droppingStream{Stream: memory.New()}
	cp, err := New(Config{
		Store:  st,
		Events: ev,
		Hosts:  fakehost.Hosts{Host: lifecycle.Host{ID: "h1", Agent: fakehost.New(), ProxyURL: agentProxy.URL}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx, ln) }()
	defer func() { cancel(); <-done }()

	var ids []string
	for range 2 {
		c, err := cp.Life.Create(ctx, "team", nestbox.CreateCapsuleRequest{})
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
		c, err = cp.Life.Wait(wctx, "team", c.ID, nestbox.StatusRunning)
		wcancel()
		if err != nil || c.Status != nestbox.StatusRunning {
			t.Fatalf("capsule %s: %s, %v; want running", c.ID, c.Status, err)
		}
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/", nil)
		req.Header.Set("E2b-Sandbox-Id", c.ID)
		req.Header.Set("E2b-Sandbox-Port", "8080")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request to capsule %s: %d", c.ID, resp.StatusCode)
		}
		ids = append(ids, c.ID)
	}
	// ids[0] stops behind the stream's back: the store has it, the stream
	// never carries it.
	if _, err := st.UpdateCapsuleStatus(ctx, ids[0], []nestbox.Status{nestbox.StatusRunning}, store.StatusUpdate{To: nestbox.StatusStopped, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if got := cp.Server.Proxied(); !slices.Contains(got, ids[0]) {
		t.Fatalf("proxied %v before the gap, want %s in it (no event said it ended)", got, ids[0])
	}
	ev.drop()
	deadline := time.Now().Add(10 * time.Second)
	for slices.Contains(cp.Server.Proxied(), ids[0]) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := cp.Server.Proxied(); !slices.Equal(got, ids[1:]) {
		t.Errorf("proxied %v after the gap, want only the running %s", got, ids[1])
	}
}
