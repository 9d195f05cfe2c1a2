// Command extension is an example of a Go program that embeds the Nestbox
// control plane (package nestbox.dev/platform) and extends it: a route,
// GET /v1/ext/hello, that answers the caller's team and writes an audit
// entry, and a background worker that ticks. docs/extensions.md walks
// through it.
//
//	go run ./examples/extension --data-dir /tmp/hello --listen 127.0.0.1:8090
//	curl -H "X-API-Key: $(jq -r .api_key /tmp/hello/credentials.json)" http://127.0.0.1:8090/v1/ext/hello
//
// Without --agent-url it serves a fleet that agents join (`nestbox agent
// --control-plane URL --join-token-file F`); with it, the one agent there.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"nestbox.dev/platform"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, &hello{}); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "extension:", err)
		os.Exit(1)
	}
}

// run parses the flags into a platform.Config, adds the hello extension h
// and runs the control plane until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, h *hello) error {
	fs := flag.NewFlagSet("extension", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg platform.Config
	var agentURL, agentTokenFile string
	fs.StringVar(&cfg.DataDir, "data-dir", "", "state directory (SQLite database, credentials.json); required")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8090", "address of the API")
	fs.StringVar(&agentURL, "agent-url", "", "base URL of one host agent; unset: a fleet whose agents join")
	fs.StringVar(&agentTokenFile, "agent-token-file", "", "a copy of that agent's agent-token file")
	fs.DurationVar(&h.every, "tick", time.Minute, "how often the example's worker ticks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.DataDir == "" {
		return errors.New("--data-dir is required")
	}
	if agentURL != "" {
		b, err := os.ReadFile(agentTokenFile)
		if err != nil {
			return fmt.Errorf("--agent-token-file: %w", err)
		}
		cfg.Agent = &platform.Agent{URL: agentURL, Token: strings.TrimSpace(string(b))}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	cfg.Extensions = []platform.Extension{h.Extension()}
	p, err := platform.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(stdout, "control plane at %s (API key in %s)\n", p.URL(), platform.CredentialsPath(cfg.DataDir))
	return p.Run(ctx)
}

// hello is the example extension. Its fields are read by tests.
type hello struct {
	// every is how often the worker ticks.
	every time.Duration
	// ticks counts the worker's ticks; stopped is set when the worker
	// has returned.
	ticks   atomic.Int64
	stopped atomic.Bool
}

// helloBody is the answer of GET /v1/ext/hello.
type helloBody struct {
	TeamID   string `json:"team_id"`
	TeamName string `json:"team_name"`
	UserID   string `json:"user_id,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
}

// Extension is hello as a platform.Extension.
func (h *hello) Extension() platform.Extension {
	return platform.Extension{Name: "hello", Setup: h.setup}
}

func (h *hello) setup(x *platform.Extender) error {
	st := x.Store()
	x.Handle("GET /v1/ext/hello", func(w http.ResponseWriter, r *http.Request) {
		// The route is behind the core's authentication: a caller is
		// always there.
		c, _ := platform.CallerOf(r)
		t, err := st.GetTeam(r.Context(), c.TeamID)
		// One audit entry per request, success or failure, through the
		// core's entry type and completion (actor, team, status).
		x.Record(r, platform.TeamEntry("hello.say", c.TeamID, map[string]string{"greeting": "hello"}), err)
		if err != nil {
			x.WriteError(w, r, fmt.Errorf("look up team %s: %w", c.TeamID, err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(helloBody{TeamID: t.ID, TeamName: t.Name, UserID: c.UserID, KeyID: c.KeyID})
	})
	x.Go("ticker", h.tick)
	return nil
}

// tick is the worker: it counts ticks until the control plane stops.
func (h *hello) tick(ctx context.Context) error {
	defer h.stopped.Store(true)
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			h.ticks.Add(1)
		}
	}
}
