package main

import (
	"context"
	"crypto/rand"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"nestbox.dev"
	"nestbox.dev/internal/testenv"
)

// postgresAdminURL is the private PostgreSQL scripts/test-services.sh
// starts (never a server the machine happens to run), where tests make
// their own databases; NESTBOX_TEST_POSTGRES_URL overrides it.
func postgresAdminURL() string {
	if u := os.Getenv("NESTBOX_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable"
}

func redisURL() string {
	if u := os.Getenv("NESTBOX_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:56379/0"
}

// freshDatabase creates an empty PostgreSQL database for the test and
// returns its URL; it is dropped at the end.
func freshDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, postgresAdminURL())
	if err != nil {
		testenv.Missing(t, "PostgreSQL is not reachable: "+err.Error())
	}
	name := "nbx_e2e_" + strings.ToLower(rand.Text()[:10])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		admin.Close(context.Background())
	})
	u := postgresAdminURL()
	base, query, _ := strings.Cut(u, "?")
	base = base[:strings.LastIndex(base, "/")+1] + name
	if query != "" {
		base += "?" + query
	}
	return base
}

// TestServerWithPostgresAndRedis runs the control plane as `nestbox server`
// on PostgreSQL and Redis Streams, the fleet's backends, in front of a
// separate `nestbox agent` set up as README's split deployment is (one
// copied file, the agent token): the lifecycle works through them, the
// database holds the capsule's history, and the agent's own events (an
// automatic pause) are accepted.
func TestServerWithPostgresAndRedis(t *testing.T) {
	b := requirePlatform(t)
	bin := buildNestbox(t)
	dbURL := freshDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cpDir := t.TempDir()
	cpAddr, metricsAddr := freeAddr(t), freeAddr(t)
	// No events token: the agent derives it from its own token, the
	// server from its copy of that token.
	agent := startAgentProcess(t, b, bin, cpAddr, "", "nbg", "10.220.0.0/24", "/nestbox-e2e-fleet")

	var cpOut syncBuffer
	cpCtx, cpCancel := context.WithCancel(ctx)
	cpDone := make(chan error, 1)
	go func() {
		cpDone <- runServer(cpCtx, []string{"--data-dir", cpDir, "--listen", cpAddr, "--agent-url", "http://" + agent.addr, "--agent-token-file", agent.tokenFile,
			"--database-url", dbURL, "--redis-url", redisURL(), "--log-level", "warn", "--metrics-listen", metricsAddr}, &cpOut, &cpOut)
	}()
	defer func() {
		cpCancel()
		if err := <-cpDone; err != nil {
			t.Errorf("nestbox server: %v\n%s", err, cpOut.String())
		}
	}()
	waitHTTP(t, "http://"+cpAddr+"/health")
	url, key, err := nestbox.LoadCredentials(cpDir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := nestbox.New(nestbox.Config{URL: url, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}

	c, err := client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", Metadata: map[string]string{"backend": "postgres"}})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, cpOut.String())
	}
	res, err := c.Exec(ctx, []string{"echo", "on postgres"})
	if err != nil || res.Stdout != "on postgres\n" {
		t.Fatalf("exec: %+v, %v", res, err)
	}
	list, err := client.List(ctx, nestbox.ListOptions{Metadata: map[string]string{"backend": "postgres"}})
	if err != nil || len(list.Capsules) != 1 || list.Capsules[0].ID != c.ID() {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if final, err := c.Kill(ctx); err != nil || final.Status != nestbox.StatusStopped {
		t.Fatalf("kill: %+v, %v", final, err)
	}
	agentToken, err := os.ReadFile(agent.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	checkScrapes(t, "http://"+metricsAddr, "http://"+agent.addr, strings.TrimSpace(string(agentToken)))

	// The history is in PostgreSQL.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var status string
	var events int
	if err := conn.QueryRow(ctx, "SELECT status FROM capsules WHERE id = $1", c.ID()).Scan(&status); err != nil || status != "stopped" {
		t.Fatalf("capsule row: %q, %v", status, err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM capsule_events WHERE capsule_id = $1", c.ID()).Scan(&events); err != nil || events != 4 {
		t.Fatalf("capsule events in PostgreSQL: %d, %v; want 4", events, err)
	}

	// The agent's own event: the automatic pause at the timeout, posted
	// with the events token the agent derived from its token, is what
	// moves the capsule to paused. (A reconcile pass would record "found
	// paused by the reconciler"; the next one is a minute away.)
	ap, err := client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal", TimeoutSeconds: 5, AutoPause: true})
	if err != nil {
		t.Fatalf("create: %v\n%s", err, cpOut.String())
	}
	if _, err := ap.Wait(ctx, nestbox.StatusPaused); err != nil {
		t.Fatalf("wait for the automatic pause: %v\n%s", err, cpOut.String())
	}
	history, err := ap.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(history, func(ev nestbox.CapsuleEvent) bool {
		return ev.To == nestbox.StatusPaused && strings.HasPrefix(ev.Reason, "paused by the host")
	}) {
		t.Fatalf("the automatic pause did not come as the agent's event: %+v\n%s", history, cpOut.String())
	}
	if _, err := ap.Kill(ctx); err != nil {
		t.Fatalf("kill the paused capsule: %v", err)
	}
}
