package settings

import (
	"testing"
	"time"
)

func TestApplyOrdersByTimestamp(t *testing.T) {
	s := New("user", "")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := "a"
	if !s.Apply(Update{EnvVars: map[string]string{"A": "1"}, AccessToken: &tok, DefaultUser: "root", DefaultWorkdir: "/w", Timestamp: t0}) {
		t.Fatal("first update not applied")
	}
	if s.Apply(Update{EnvVars: map[string]string{"A": "old"}, Timestamp: t0.Add(-time.Second)}) {
		t.Fatal("stale update applied")
	}
	if got := s.EnvVars()["A"]; got != "1" {
		t.Fatalf("A: got %q, want 1", got)
	}
	if !s.Apply(Update{EnvVars: map[string]string{"B": "2"}, Timestamp: t0}) {
		t.Fatal("same-timestamp retry not applied")
	}
	env := s.EnvVars()
	if env["A"] != "1" || env["B"] != "2" {
		t.Fatalf("env vars not merged: %v", env)
	}
	if s.AccessToken() != "a" || s.DefaultUser() != "root" || s.DefaultWorkdir() != "/w" {
		t.Fatalf("got token %q user %q workdir %q", s.AccessToken(), s.DefaultUser(), s.DefaultWorkdir())
	}
	empty := ""
	s.Apply(Update{AccessToken: &empty})
	if s.AccessToken() != "" {
		t.Fatal("empty token did not clear it")
	}
	env["A"] = "mutated"
	if s.EnvVars()["A"] != "1" {
		t.Fatal("EnvVars returned the internal map")
	}
}
