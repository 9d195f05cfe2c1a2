package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nestbox.dev/internal/agent"
)

// TestJoinFleet checks `nestbox agent --control-plane`'s first and later
// starts against a fake control plane: the join sends the token and the
// advertised URL, keeps the issued token and the membership (0600), and
// a restart heartbeats as the same host without joining again.
func TestJoinFleet(t *testing.T) {
	issued := strings.Repeat("k", 52)
	var joins int
	var gotAuth string
	var gotBody map[string]any
	cp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/hosts/register" {
			http.NotFound(w, r)
			return
		}
		joins++
		gotAuth = r.Header.Get("Authorization")
		json.NewDecoder(r.Body).Decode(&gotBody)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"host_id": "h_one", "agent_token": issued, "heartbeat_interval_seconds": 5})
	}))
	defer cp.Close()

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "agent-token")
	j := joinFlags{controlPlane: cp.URL}
	var stderr bytes.Buffer

	cfg := agent.Config{DataDir: dir}
	if err := joinFleet(context.Background(), &cfg, j, "", "10.0.0.5:5007", tokenFile, &stderr); err == nil || !strings.Contains(err.Error(), "join token") {
		t.Errorf("a first start without a join token: %v, want a refusal naming the join token", err)
	}
	if err := joinFleet(context.Background(), &cfg, j, "nbj_x", "0.0.0.0:5007", tokenFile, &stderr); err == nil || !strings.Contains(err.Error(), "--advertise-url") {
		t.Errorf("--listen 0.0.0.0 without --advertise-url: %v, want a refusal naming it", err)
	}
	withToken := agent.Config{DataDir: dir, Token: issued}
	if err := joinFleet(context.Background(), &withToken, j, "nbj_x", "10.0.0.5:5007", tokenFile, &stderr); err == nil {
		t.Error("a fleet agent with its own NESTBOX_AGENT_TOKEN was accepted")
	}
	if joins != 0 {
		t.Fatalf("%d joins before a valid first start", joins)
	}

	if err := joinFleet(context.Background(), &cfg, j, "nbj_secret", "10.0.0.5:5007", tokenFile, &stderr); err != nil {
		t.Fatalf("join: %v", err)
	}
	if joins != 1 || gotAuth != "Bearer nbj_secret" || gotBody["url"] != "http://10.0.0.5:5007" {
		t.Errorf("the join sent %q and %v, want the join token and the advertised URL", gotAuth, gotBody)
	}
	if cfg.HostID != "h_one" || cfg.EventsURL != cp.URL+"/v1/hosts/sandbox-events" || cfg.Heartbeat.URL != cp.URL+"/v1/hosts/heartbeat" {
		t.Errorf("after the join cfg = host %q, events %q, heartbeat %+v", cfg.HostID, cfg.EventsURL, cfg.Heartbeat)
	}
	for _, f := range []string{tokenFile, filepath.Join(dir, "fleet.json")} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, st.Mode())
		}
	}
	if tok, err := agent.ReadTokenFile(tokenFile); err != nil || tok != issued {
		t.Errorf("the token file holds %q, %v; want the issued token", tok, err)
	}

	// A restart: the same host, no second join, no join token needed.
	again := agent.Config{DataDir: dir}
	if err := joinFleet(context.Background(), &again, j, "", "10.0.0.5:5007", tokenFile, &stderr); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if joins != 1 || again.HostID != "h_one" {
		t.Errorf("a restart joined %d times in all and is host %q; want 1 and h_one", joins, again.HostID)
	}
	// Another control plane's URL: refused, the membership kept.
	other := joinFlags{controlPlane: "http://elsewhere:8080"}
	if err := joinFleet(context.Background(), &agent.Config{DataDir: dir}, other, "nbj_x", "10.0.0.5:5007", tokenFile, &stderr); err == nil || !strings.Contains(err.Error(), "fleet.json") {
		t.Errorf("a restart toward another control plane: %v, want a refusal naming fleet.json", err)
	}
}
