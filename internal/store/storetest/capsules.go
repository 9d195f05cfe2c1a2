package storetest

import (
	"errors"
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

func testCapsuleRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	// Times in another zone must come back as the same instants.
	zone := time.FixedZone("UTC+2", 2*60*60)
	full := store.Capsule{
		Capsule: nestbox.Capsule{
			ID:          "full",
			TeamID:      "t1",
			Template:    "python",
			Status:      nestbox.StatusRunning,
			Error:       "an earlier error",
			VCPUs:       4,
			MemoryMB:    2048,
			DiskMB:      10240,
			Metadata:    map[string]string{"user": "ada", "run": "42", "dots.and spaces": "ok", "quote\"": "é"},
			Internet:    false,
			AllowOut:    []string{"10.0.0.0/8", "1.1.1.1"},
			DenyOut:     []string{"0.0.0.0/0"},
			HostID:      "h1",
			EnvdVersion: "0.4.2",
			// Private ports; bare's "" is public traffic.
			TrafficAccessToken: "traffic-token",
			CreatedAt:          at(1).In(zone),
			StartedAt:          ptr(at(2).In(zone)),
			ExpiresAt:          ptr(at(7)),
			StoppedAt:          ptr(at(8)),
			PausedAt:           ptr(at(5).In(zone)),
			AutoPause:          true,
			AutoPauseMemory:    true,
			AutoResume:         true,
			SnapshotID:         "snap1",
		},
		EnvVars:      map[string]string{"A": "1", "PATH": "/bin:/usr/bin"},
		AccessToken:  "secret-token",
		UpdatedAt:    at(3),
		Generation:   7,
		PausedMemory: true,
		Remaining:    42 * time.Second,
	}
	bare := capsule("bare", "t1", at(4))
	bare.Internet = false
	bare.MemoryMB = 0
	for _, c := range []store.Capsule{full, bare} {
		create(t, s, c)
		if d := diff(get(t, s, c.ID), c); d != "" {
			t.Errorf("GetCapsule(%s): %s", c.ID, d)
		}
	}
	if c := get(t, s, "bare"); c.StartedAt != nil || c.ExpiresAt != nil || c.StoppedAt != nil {
		t.Errorf("GetCapsule(bare) times = %v %v %v, want nil", c.StartedAt, c.ExpiresAt, c.StoppedAt)
	}

	// The first event is the creation: from nothing to the first status.
	want := []nestbox.CapsuleEvent{{CapsuleID: "full", To: nestbox.StatusRunning, At: full.CreatedAt}}
	if d := diff(events(t, s, "full"), want); d != "" {
		t.Errorf("CapsuleEvents after create: %s", d)
	}

	dup := capsule("full", "t1", at(9))
	if err := s.CreateCapsule(ctx, dup); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("CreateCapsule with a taken ID: %v, want ErrAlreadyExists", err)
	}
	if d := diff(get(t, s, "full"), full); d != "" {
		t.Errorf("GetCapsule(full) after a duplicate create: %s", d)
	}
	if err := s.CreateCapsule(ctx, capsule("orphan", "nope", at(9))); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("CreateCapsule of an unknown team: %v, want ErrNotFound", err)
	}
}

func testCapsuleNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	create(t, s, capsule("c1", "t1", t0)) // so that the store is not empty
	for name, call := range map[string]func() error{
		"GetCapsule": func() error { _, err := s.GetCapsule(ctx, "nope"); return err },
		"UpdateCapsuleStatus": func() error {
			_, err := s.UpdateCapsuleStatus(ctx, "nope", []nestbox.Status{nestbox.StatusStarting}, store.StatusUpdate{To: nestbox.StatusRunning})
			return err
		},
		"SetCapsuleExpiry": func() error { return s.SetCapsuleExpiry(ctx, "nope", t0) },
		"CapsuleEvents":    func() error { _, err := s.CapsuleEvents(ctx, "nope"); return err },
	} {
		if err := call(); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("%s of an unknown capsule: %v, want ErrNotFound", name, err)
		}
	}
}

func testCapsuleExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	// Whatever the status: a stopped capsule too.
	for _, st := range []nestbox.Status{nestbox.StatusStarting, nestbox.StatusStopped} {
		c := capsule("c-"+string(st), "t1", t0)
		c.Status = st
		create(t, s, c)
		if err := s.SetCapsuleExpiry(ctx, c.ID, at(30)); err != nil {
			t.Fatalf("SetCapsuleExpiry(%s): %v", c.ID, err)
		}
		c.ExpiresAt = ptr(at(30))
		if d := diff(get(t, s, c.ID), c); d != "" {
			t.Errorf("GetCapsule(%s) after SetCapsuleExpiry: %s", c.ID, d)
		}
		if n := len(events(t, s, c.ID)); n != 1 {
			t.Errorf("CapsuleEvents(%s) after SetCapsuleExpiry: %d events, want 1 (it is no status change)", c.ID, n)
		}
	}
}
