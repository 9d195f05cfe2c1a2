package storetest

import (
	"errors"
	"testing"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

func testHosts(t *testing.T, s store.Store) {
	ctx := t.Context()
	h1 := store.Host{ID: "h1", Address: "http://10.0.0.1:5007", LastSeen: at(1), Created: at(1)}
	h2 := store.Host{ID: "h2", Address: "http://10.0.0.2:5007", LastSeen: at(2), Created: at(2)}
	for _, h := range []store.Host{h1, h2} {
		if err := s.UpsertHost(ctx, h); err != nil {
			t.Fatalf("UpsertHost(%s): %v", h.ID, err)
		}
	}

	// A heartbeat from a new address: Created is the first registration's.
	beat := store.Host{ID: "h1", Address: "http://10.0.0.9:5007", LastSeen: at(9), Created: at(9)}
	if err := s.UpsertHost(ctx, beat); err != nil {
		t.Fatalf("UpsertHost(h1) again: %v", err)
	}
	want := store.Host{ID: "h1", Address: beat.Address, LastSeen: beat.LastSeen, Created: h1.Created}
	got, err := s.GetHost(ctx, "h1")
	if err != nil {
		t.Fatalf("GetHost(h1): %v", err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("GetHost(h1) after a second upsert: %s", d)
	}

	hs, err := s.ListHosts(ctx)
	if err != nil {
		t.Fatalf("ListHosts: %v", err)
	}
	byID := map[string]store.Host{}
	for _, h := range hs {
		byID[h.ID] = h
	}
	if len(hs) != 2 || len(byID) != 2 {
		t.Fatalf("ListHosts = %v, want h1 and h2 once each", hs)
	}
	for _, w := range []store.Host{want, h2} {
		if d := diff(byID[w.ID], w); d != "" {
			t.Errorf("ListHosts, host %s: %s", w.ID, d)
		}
	}

	if _, err := s.GetHost(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetHost(nope): %v, want ErrNotFound", err)
	}
}
