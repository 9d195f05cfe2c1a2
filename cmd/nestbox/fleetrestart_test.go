package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"nestbox.dev"
)

// TestFleetBackendsRestart restarts the fleet's PostgreSQL and then its
// Redis (private servers of this test, so that the shared ones the other
// tests use stay up) while creates, execs and destroys run through two
// replicas onto two agents. Afterwards both replicas serve again, no
// capsule the API said it created is lost, none is left transient or
// missing, and the store's status of every capsule is what its host
// says. PostgreSQL is stopped as by a crash (every connection cut);
// Redis is SIGKILLed and comes back empty (no persistence), so the event
// stream loses everything it held.
func TestFleetBackendsRestart(t *testing.T) {
	b := requirePlatform(t)
	bin := buildNestbox(t)
	pg := startPrivatePostgres(t)
	rd := startPrivateRedis(t)
	dbURL := pg.createDatabase("nestbox")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	rs := startFleetReplicas(t, ctx, 2, "127.0.0.1", dbURL, rd.url(), "--heartbeat-interval", "1s", "--reconcile-interval", "3s")
	logs := func() string { return replicaLogs(rs) }
	tokFile := joinFile(t, ctx, rs[0].client, 2)
	procs := []*agentProcess{
		startFleetAgent(t, b, bin, "http://"+rs[0].addr, tokFile, "nbk", "10.225.0.0/24", "/nestbox-e2e-fleet-restart-a"),
		startFleetAgent(t, b, bin, "http://"+rs[1].addr, tokFile, "nbl", "10.226.0.0/24", "/nestbox-e2e-fleet-restart-b"),
	}
	ids := waitHosts(t, ctx, rs[1].client, []string{"http://" + procs[0].addr, "http://" + procs[1].addr})
	agents := []fleetAgent{{ids[0], procs[0]}, {ids[1], procs[1]}}

	load := startLoad(ctx, []*nestbox.Client{rs[0].client, rs[1].client}, 2)
	// Each outage starts once the load has completed rounds since the
	// last one, so that creates are in every phase of their work.
	progress := func(what string) {
		t.Helper()
		from := load.rounds()
		waitFor(t, 2*time.Minute, "two rounds of load "+what, func() bool { return load.rounds() >= from+2 })
	}
	progress("before the restarts")
	pg.stop()
	t.Log("PostgreSQL stopped")
	time.Sleep(4 * time.Second) // longer than a host's three heartbeat intervals
	pg.start()
	t.Log("PostgreSQL started again")
	progress("after PostgreSQL's restart")
	rd.stop()
	t.Log("Redis killed")
	time.Sleep(4 * time.Second)
	rd.start()
	t.Log("Redis started again, empty")
	progress("after Redis's restart")
	res := load.end()
	created := res.created
	t.Logf("%d capsules created, %d rounds from create to destroy, %d errors along the way", len(created), res.rounds, len(res.errs))
	if len(res.errs) > 0 {
		t.Logf("errors during the outages:\n%s", strings.Join(res.errs, "\n"))
	}
	if len(res.internal) > 0 {
		t.Errorf("the API answered a backend's outage with errors other than 503:\n%s", strings.Join(res.internal, "\n"))
	}

	// Both replicas serve capsules again, from create to exec.
	for i, r := range rs {
		h, err := r.client.Create(ctx, nestbox.CreateCapsuleRequest{Template: "minimal"})
		if err != nil {
			t.Fatalf("create through replica %d after the restarts: %v\n%s", i, err, logs())
		}
		created = append(created, h.ID())
		if res, err := rs[1-i].client.Capsule(h.ID()).Exec(ctx, []string{"echo", "after"}); err != nil || res.Stdout != "after\n" {
			t.Errorf("exec through replica %d after the restarts: %+v, %v", 1-i, res, err)
		}
	}
	waitConsistent(t, ctx, time.Minute, dbURL, created, agents, logs)
	// The hosts kept heartbeating through the outages, as far as they
	// could: none was taken for silent, no capsule went missing.
	for _, id := range created {
		history, err := rs[1].client.Capsule(id).Events(ctx)
		if err != nil {
			t.Fatalf("events of %s: %v", id, err)
		}
		for _, ev := range history {
			if ev.To == nestbox.StatusMissing {
				t.Errorf("capsule %s went missing: %s", id, ev.Reason)
			}
		}
	}
	// The capsules that run are running on their hosts; kill them through
	// the API so that the agents' cleanup finds nothing of the test's.
	for _, id := range created {
		if c, err := rs[0].client.Get(ctx, id); err == nil && !c.Status.Final() {
			if _, err := rs[0].client.Capsule(id).Kill(ctx); err != nil {
				t.Errorf("kill %s: %v", id, err)
			}
		}
	}
}
