package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sync"
	"testing"
	"time"

	"nestbox.dev"
)

// TestExtension runs the example program (a control plane on SQLite with
// the hello extension), calls its route through HTTP with and without an
// API key, reads the route's audit entry back through the audit-log API,
// and checks that the worker ran and had returned once the program
// stopped.
func TestExtension(t *testing.T) {
	dir := t.TempDir()
	h := &hello{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"--data-dir", dir, "--listen", "127.0.0.1:0", "--tick", "10ms"}, out, io.Discard, h)
	}()
	base := waitFor(t, errc, func() string {
		m := regexp.MustCompile(`control plane at (http://\S+)`).FindStringSubmatch(out.String())
		if m == nil {
			return ""
		}
		return m[1]
	})
	_, key, err := nestbox.LoadCredentials(dir)
	if err != nil {
		t.Fatalf("the first start's API key: %v", err)
	}

	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{"no key", "", http.StatusUnauthorized},
		{"malformed key", "nbx_nope", http.StatusUnauthorized},
		{"the first start's key", key, http.StatusOK},
	} {
		req, _ := http.NewRequest("GET", base+"/v1/ext/hello", nil)
		if tc.key != "" {
			req.Header.Set("X-API-Key", tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("GET /v1/ext/hello with %s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
		if tc.want != http.StatusOK {
			var e struct{ Error struct{ Code string } }
			if json.Unmarshal(body, &e) != nil || e.Error.Code != "unauthenticated" {
				t.Errorf("GET /v1/ext/hello with %s: body %s, want the API's error with code unauthenticated", tc.name, body)
			}
			continue
		}
		var got helloBody
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("GET /v1/ext/hello: %v in %s", err, body)
		}
		if got.TeamID != "team_default" || got.TeamName != "default" || got.KeyID == "" || got.UserID != "usr_admin" {
			t.Errorf("GET /v1/ext/hello answered %+v, want the default team, its bootstrap key and the admin who made it", got)
		}
	}

	c, err := nestbox.New(nestbox.Config{URL: base, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	l, err := c.AuditLogs(ctx, nestbox.AuditListOptions{ResourceType: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	// The two refused requests never reached the handler: one entry.
	if len(l.Entries) != 1 {
		t.Fatalf("audit entries of resource type hello: %+v, want one", l.Entries)
	}
	e := l.Entries[0]
	if e.Action != "hello.say" || e.Scope != nestbox.AuditScopeTeam || e.TeamID != "team_default" || e.Status != nestbox.AuditSuccess ||
		e.Actor.Type != nestbox.AuditActorAPIKey || e.Actor.ID == "" || e.Metadata["greeting"] != "hello" {
		t.Errorf("the route's audit entry: %+v", e)
	}

	waitFor(t, errc, func() string {
		if h.ticks.Load() > 0 {
			return "ticked"
		}
		return ""
	})
	if h.stopped.Load() {
		t.Fatal("the worker returned while the control plane runs")
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("the program stopped with %v, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the program did not stop within a minute of its context's end")
	}
	if !h.stopped.Load() {
		t.Error("the program returned before its worker did")
	}
}

// waitFor polls f until it returns something other than "", failing the
// test if the program ends first or a minute passes.
func waitFor(t *testing.T, errc <-chan error, f func() string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if v := f(); v != "" {
			return v
		}
		select {
		case err := <-errc:
			t.Fatalf("the program ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("timed out")
	return ""
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
