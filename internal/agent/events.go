package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// EventType is what happened to a sandbox.
type EventType string

// Event types, in the order a sandbox's life produces them.
const (
	// EventCreated: the runtime started the sandbox.
	EventCreated EventType = "created"
	// EventRunning: envd answers and is initialised.
	EventRunning EventType = "running"
	// EventStopped: destroyed on request (or a create failed after
	// EventCreated).
	EventStopped EventType = "stopped"
	// EventTimedOut: destroyed by the agent at the end of its timeout.
	EventTimedOut EventType = "timed_out"
	// EventCrashed: the sandbox stopped on its own, found by the agent
	// while running or when it restarted (or a failed pause could not
	// start it again).
	EventCrashed EventType = "crashed"
	// EventPaused: paused by the agent itself; Reason says why
	// ("timeout": auto_pause at the end of its timeout). Pauses the
	// control plane asked for are answered by the RPC, not an event.
	EventPaused EventType = "paused"
)

// Event is the JSON body the agent POSTs to Config.EventsURL, one event per
// request.
type Event struct {
	HostID    string    `json:"host_id,omitempty"`
	SandboxID string    `json:"sandbox_id"`
	Type      EventType `json:"type"`
	// Reason qualifies Type; "" (omitted) unless it needs one.
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// maxPendingEvents bounds the queue of undelivered events; when the control
// plane is away long enough to fill it, the oldest are dropped (its
// reconciler finds out the state anyway).
const maxPendingEvents = 4096

// eventQueue delivers events in order, one at a time, retrying each with
// backoff until the receiver answers 2xx. push never blocks.
type eventQueue struct {
	url    string
	token  string
	hostID string
	log    *slog.Logger
	client *http.Client
	wake   chan struct{} // capacity 1: "the queue is not empty"

	// mu guards pending.
	mu      sync.Mutex
	pending []Event
}

func newEventQueue(url, token, hostID string, log *slog.Logger) *eventQueue {
	return &eventQueue{
		url:    url,
		token:  token,
		hostID: hostID,
		log:    log,
		client: &http.Client{Timeout: 10 * time.Second},
		wake:   make(chan struct{}, 1),
	}
}

// emit queues an event about sandbox id.
func (a *Agent) emit(id string, typ EventType) {
	a.events.push(Event{HostID: a.events.hostID, SandboxID: id, Type: typ, At: time.Now().UTC()})
}

// emitReason queues an event with a reason.
func (a *Agent) emitReason(id string, typ EventType, reason string) {
	a.events.push(Event{HostID: a.events.hostID, SandboxID: id, Type: typ, Reason: reason, At: time.Now().UTC()})
}

func (q *eventQueue) push(ev Event) {
	if q.url == "" {
		return
	}
	q.mu.Lock()
	if len(q.pending) >= maxPendingEvents {
		q.log.Warn("event queue full: dropping the oldest event", "dropped", q.pending[0])
		q.pending = q.pending[1:]
	}
	q.pending = append(q.pending, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers events until ctx is done. Events still queued then are lost
// with the process; the control plane reconciles.
func (q *eventQueue) run(ctx context.Context) {
	for {
		q.mu.Lock()
		var ev Event
		ok := len(q.pending) > 0
		if ok {
			ev = q.pending[0]
		}
		q.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		if !q.deliver(ctx, ev) {
			return
		}
		q.mu.Lock()
		q.pending = q.pending[1:]
		q.mu.Unlock()
	}
}

// deliver posts ev until it is acknowledged (true) or ctx is done (false).
func (q *eventQueue) deliver(ctx context.Context, ev Event) bool {
	body, _ := json.Marshal(ev)
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := q.post(ctx, body)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt == 1 || attempt%10 == 0 {
			q.log.Warn("event not delivered; retrying", "sandbox", ev.SandboxID, "type", ev.Type, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (q *eventQueue) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if q.token != "" {
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	if q.hostID != "" {
		// A fleet's control plane authenticates the host it names.
		req.Header.Set(HostIDHeader, q.hostID)
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("events endpoint answered %s", resp.Status)
	}
	return nil
}
