package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"nestbox.dev/internal/proto/agentpb"
)

// eventSink is a fake control plane: it records the events posted to it,
// answering 500 to the first failFirst requests. If token is set, requests
// without it are refused.
type eventSink struct {
	*httptest.Server
	failFirst int
	token     string

	// mu guards the fields below.
	mu       sync.Mutex
	requests int
	events   []Event
}

func newEventSink(t *testing.T, failFirst int) *eventSink {
	s := &eventSink{failFirst: failFirst}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.requests++
		if r.Method != http.MethodPost || r.URL.Path != "/v1/hosts/sandbox-events" {
			http.Error(w, "wrong endpoint", http.StatusNotFound)
			return
		}
		if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
			http.Error(w, "wrong token", http.StatusUnauthorized)
			return
		}
		if s.requests <= s.failFirst {
			http.Error(w, "not now", http.StatusInternalServerError)
			return
		}
		var ev Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.events = append(s.events, ev)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *eventSink) url() string { return s.URL + "/v1/hosts/sandbox-events" }

// typesOf returns the types of the events received about id, in order.
func (s *eventSink) typesOf(id string) []EventType {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []EventType
	for _, ev := range s.events {
		if ev.SandboxID == id {
			out = append(out, ev.Type)
		}
	}
	return out
}

// waitFor polls until the events about id are want.
func (s *eventSink) waitFor(t *testing.T, id string, want ...EventType) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		got := s.typesOf(id)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of %s: got %v, want %v", id, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEvents checks the lifecycle events the agent posts, their retry
// when the control plane fails, and crash detection of a sandbox killed
// behind the agent's back.
func TestEvents(t *testing.T) {
	h := newTestHost(t)
	sink := newEventSink(t, 2)
	ta := h.startAgent(t, "", func(c *Config) {
		c.EventsURL = sink.url()
		c.HostID = "host-1"
	})

	destroyed := ta.create(t, &agentpb.SandboxConfig{})
	timedOut := ta.create(t, &agentpb.SandboxConfig{TimeoutSeconds: 1})
	crashed := ta.create(t, &agentpb.SandboxConfig{})
	ta.destroyRPC(t, destroyed.Id)

	// Kill one behind the agent's back, as the OOM killer would.
	runsc := exec.Command(h.p.runsc, "--root="+filepath.Join(h.dataDir, "runsc"), "kill", crashed.Id, "KILL")
	if out, err := runsc.CombinedOutput(); err != nil {
		t.Fatalf("runsc kill: %v: %s", err, out)
	}

	sink.waitFor(t, destroyed.Id, EventCreated, EventRunning, EventStopped)
	sink.waitFor(t, timedOut.Id, EventCreated, EventRunning, EventTimedOut)
	sink.waitFor(t, crashed.Id, EventCreated, EventRunning, EventCrashed)
	ta.waitGone(t, crashed.Id, 30*time.Second)

	sink.mu.Lock()
	for _, ev := range sink.events {
		if ev.HostID != "host-1" || ev.At.IsZero() || time.Since(ev.At) > 5*time.Minute {
			t.Errorf("event %+v: want host-1 and a recent time", ev)
		}
	}
	if sink.requests < len(sink.events)+2 {
		t.Errorf("%d requests for %d events: the two failed posts were not retried", sink.requests, len(sink.events))
	}
	sink.mu.Unlock()
	assertClean(t, h.dataDir)
}

// TestEventQueueRetries checks the queue on its own: it keeps an event
// until the receiver acknowledges it and delivers in order.
func TestEventQueueRetries(t *testing.T) {
	sink := newEventSink(t, 3)
	sink.token = "host-secret"
	q := newEventQueue(sink.url(), sink.token, "h", testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { q.run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	for _, typ := range []EventType{EventCreated, EventRunning, EventStopped} {
		q.push(Event{SandboxID: "s", Type: typ, At: time.Now()})
	}
	sink.waitFor(t, "s", EventCreated, EventRunning, EventStopped)
}
