package storetest

import (
	"errors"
	"testing"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	owner(t, s, "u1", "t1")
	owner(t, s, "u2", "t2")

	// Created newest first, to see that ListAPIKeys sorts.
	newer := store.APIKey{ID: "k2", TeamID: "t1", Name: "ci", Prefix: "nbx_2222", Hash: "hash2", CreatedAt: at(2)}
	older := store.APIKey{ID: "k1", TeamID: "t1", Name: "laptop", Prefix: "nbx_1111", Hash: "hash1", CreatedBy: "u1", CreatedAt: at(1)}
	other := store.APIKey{ID: "k3", TeamID: "t2", Name: "theirs", Prefix: "nbx_3333", Hash: "hash3", CreatedAt: at(3)}
	for _, k := range []store.APIKey{newer, older, other} {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
		}
	}

	got, err := s.APIKeyByHash(ctx, "hash1")
	if err != nil {
		t.Fatalf("APIKeyByHash(hash1): %v", err)
	}
	if d := diff(got, older); d != "" {
		t.Errorf("APIKeyByHash(hash1): %s", d)
	}
	ks, err := s.ListAPIKeys(ctx, "t1")
	if err != nil {
		t.Fatalf("ListAPIKeys(t1): %v", err)
	}
	if d := diff(ks, []store.APIKey{older, newer}); d != "" {
		t.Errorf("ListAPIKeys(t1): %s", d)
	}

	for _, tc := range []struct {
		name string
		k    store.APIKey
		want error
	}{
		{"taken hash", store.APIKey{ID: "k9", TeamID: "t1", Hash: "hash1", CreatedAt: t0}, errdefs.ErrAlreadyExists},
		{"taken ID", store.APIKey{ID: "k1", TeamID: "t1", Hash: "hash9", CreatedAt: t0}, errdefs.ErrAlreadyExists},
		{"unknown team", store.APIKey{ID: "k9", TeamID: "nope", Hash: "hash9", CreatedAt: t0}, errdefs.ErrNotFound},
	} {
		if err := s.CreateAPIKey(ctx, tc.k); !errors.Is(err, tc.want) {
			t.Errorf("CreateAPIKey with a %s: %v, want %v", tc.name, err, tc.want)
		}
	}

	used := at(5)
	if err := s.TouchAPIKey(ctx, "k1", used); err != nil {
		t.Fatalf("TouchAPIKey: %v", err)
	}
	if got, err := s.APIKeyByHash(ctx, "hash1"); err != nil || got.LastUsedAt == nil || !got.LastUsedAt.Equal(used) {
		t.Errorf("LastUsedAt after TouchAPIKey = %v (err %v), want %v", got.LastUsedAt, err, used)
	}
	if err := s.TouchAPIKey(ctx, "nope", used); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("TouchAPIKey(nope): %v, want ErrNotFound", err)
	}

	// Another team's key is not found and stays usable.
	if err := s.DeleteAPIKey(ctx, "t2", "k1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DeleteAPIKey of another team's key: %v, want ErrNotFound", err)
	}
	if _, err := s.APIKeyByHash(ctx, "hash1"); err != nil {
		t.Errorf("APIKeyByHash after another team's delete: %v", err)
	}

	if err := s.DeleteAPIKey(ctx, "t1", "k1"); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	if _, err := s.APIKeyByHash(ctx, "hash1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("APIKeyByHash of a revoked key: %v, want ErrNotFound", err)
	}
	if err := s.DeleteAPIKey(ctx, "t1", "k1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("DeleteAPIKey twice: %v, want ErrNotFound", err)
	}
	if _, err := s.APIKeyByHash(ctx, "never"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("APIKeyByHash(never): %v, want ErrNotFound", err)
	}
	ks, err = s.ListAPIKeys(ctx, "t1")
	if err != nil {
		t.Fatalf("ListAPIKeys(t1): %v", err)
	}
	if d := diff(ks, []store.APIKey{newer}); d != "" {
		t.Errorf("ListAPIKeys(t1) after delete: %s", d)
	}
}
