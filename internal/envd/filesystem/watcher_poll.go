package filesystem

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"

	"connectrpc.com/connect"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/proto/filesystempb"
)

// MaxBufferedEvents bounds the events a polling watcher keeps between two
// GetWatcherEvents calls; beyond it the oldest are dropped.
const MaxBufferedEvents = 10000

// pollWatcher is a watch whose events wait in a buffer for GetWatcherEvents
// (E2B's Python SDK watches this way). One goroutine, started by
// CreateWatcher, fills the buffer until cancel is called; done closes when
// it has returned.
type pollWatcher struct {
	cancel context.CancelFunc
	done   chan struct{}

	// mu guards the fields below it.
	mu      sync.Mutex
	events  []*filesystempb.FilesystemEvent
	dropped int
	err     error // why the watch ended by itself
}

// CreateWatcher starts a watch like WatchDir whose events are collected
// until GetWatcherEvents fetches them. It lives until RemoveWatcher or
// Close.
func (s *Service) CreateWatcher(_ context.Context, req *connect.Request[filesystempb.CreateWatcherRequest]) (*connect.Response[filesystempb.CreateWatcherResponse], error) {
	if err := s.startWatch(); err != nil {
		return nil, errdefs.ToConnect(err)
	}
	m := req.Msg
	d, err := s.openWatch(req.Header(), m.GetPath(), m.GetRecursive(), m.GetIncludeEntry(), m.GetAllowNetworkMounts())
	if err != nil {
		s.wg.Done()
		return nil, errdefs.ToConnect(err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	pw := &pollWatcher{cancel: cancel, done: make(chan struct{})}
	id := rand.Text()
	s.mu.Lock()
	s.watchers[id] = pw
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer close(pw.done)
		defer d.close()
		pw.run(ctx, d)
	}()
	return connect.NewResponse(&filesystempb.CreateWatcherResponse{WatcherId: id}), nil
}

// GetWatcherEvents returns the events collected since the last call, oldest
// first. Once the watch has ended by itself (events were lost, the service
// closes) and its events were fetched, it returns why.
func (s *Service) GetWatcherEvents(_ context.Context, req *connect.Request[filesystempb.GetWatcherEventsRequest]) (*connect.Response[filesystempb.GetWatcherEventsResponse], error) {
	id := req.Msg.GetWatcherId()
	s.mu.Lock()
	pw, ok := s.watchers[id]
	s.mu.Unlock()
	if !ok {
		return nil, errdefs.ToConnect(errdefs.NotFound("watcher %q not found", id))
	}
	pw.mu.Lock()
	events, dropped := pw.take()
	werr := pw.err
	pw.mu.Unlock()
	if dropped > 0 {
		s.log.Warn("watcher dropped events nobody fetched", "watcher", id, "dropped", dropped)
	}
	if len(events) == 0 && werr != nil {
		return nil, errdefs.ToConnect(werr)
	}
	if events == nil {
		events = []*filesystempb.FilesystemEvent{}
	}
	return connect.NewResponse(&filesystempb.GetWatcherEventsResponse{Events: events}), nil
}

// RemoveWatcher stops a watcher and drops its events.
func (s *Service) RemoveWatcher(_ context.Context, req *connect.Request[filesystempb.RemoveWatcherRequest]) (*connect.Response[filesystempb.RemoveWatcherResponse], error) {
	id := req.Msg.GetWatcherId()
	s.mu.Lock()
	pw, ok := s.watchers[id]
	delete(s.watchers, id)
	s.mu.Unlock()
	if !ok {
		return nil, errdefs.ToConnect(errdefs.NotFound("watcher %q not found", id))
	}
	pw.cancel()
	<-pw.done
	return connect.NewResponse(&filesystempb.RemoveWatcherResponse{}), nil
}

func (pw *pollWatcher) run(ctx context.Context, d *dirWatcher) {
	for {
		select {
		case <-ctx.Done():
			pw.end(errdefs.Unavailable("watcher stopped"))
			return
		case ev, ok := <-d.w.Events:
			if !ok {
				pw.end(fmt.Errorf("watch %s: watcher closed", d.root))
				return
			}
			evs, err := d.handle(ev)
			pw.push(evs)
			if err != nil {
				pw.end(err)
				return
			}
		case err, ok := <-d.w.Errors:
			if !ok {
				err = fmt.Errorf("watch %s: watcher closed", d.root)
			}
			pw.end(d.fail(err))
			return
		}
	}
}

func (pw *pollWatcher) push(evs []*filesystempb.FilesystemEvent) {
	if len(evs) == 0 {
		return
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.events = append(pw.events, evs...)
	// Drop the oldest in batches: the buffer may reach twice the bound,
	// so trimming costs O(1) per event even when nobody polls.
	if len(pw.events) > 2*MaxBufferedEvents {
		pw.trim()
	}
}

// take returns the buffered events, at most MaxBufferedEvents of them, and
// empties the buffer. pw.mu must be held.
func (pw *pollWatcher) take() ([]*filesystempb.FilesystemEvent, int) {
	pw.trim()
	events, dropped := pw.events, pw.dropped
	pw.events, pw.dropped = nil, 0
	return events, dropped
}

// trim drops the oldest events beyond MaxBufferedEvents. pw.mu must be held.
func (pw *pollWatcher) trim() {
	over := len(pw.events) - MaxBufferedEvents
	if over <= 0 {
		return
	}
	pw.events = append(pw.events[:0:0], pw.events[over:]...)
	pw.dropped += over
}

func (pw *pollWatcher) end(err error) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.err = err
}
