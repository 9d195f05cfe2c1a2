package lifecycle_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/events/redis"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
	"nestbox.dev/internal/testenv"
)

// testRedis returns the URL of the test machine's Redis
// (NESTBOX_TEST_REDIS_URL, else the private server of `make test-deps`)
// and a stream key of the test's own, deleted when it ends: other
// packages' tests share the server.
func testRedis(t *testing.T) (url, key string, admin *goredis.Client) {
	t.Helper()
	url = os.Getenv("NESTBOX_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:56379/0"
	}
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("NESTBOX_TEST_REDIS_URL %q: %v", url, err)
	}
	admin = goredis.NewClient(opts)
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.Ping(ctx).Err(); err != nil {
		testenv.Missing(t, fmt.Sprintf("redis at %s: %v", url, err))
	}
	key = "nestbox:test:" + rand.Text()
	t.Cleanup(func() { admin.Del(context.Background(), key) })
	return url, key, admin
}

// countingStore counts, per capsule, the status updates to running that
// reach the store through it: the fallback writer's applications.
type countingStore struct {
	store.Store
	mu *sync.Mutex
	by map[string][]string // capsule ID -> the control planes that applied
	cp string
}

func (s *countingStore) UpdateCapsuleStatus(ctx context.Context, id string, from []nestbox.Status, u store.StatusUpdate) (store.Capsule, error) {
	if u.To == nestbox.StatusRunning {
		s.mu.Lock()
		s.by[id] = append(s.by[id], s.cp)
		s.mu.Unlock()
	}
	return s.Store.UpdateCapsuleStatus(ctx, id, from, u)
}

// TestFallbackWriterOnceAcrossControlPlanes runs two control planes'
// lifecycles on one store and one Redis stream key, publishes changes no
// one recorded (as a third control plane whose writes failed would), and
// checks that each change is applied, and applied by one control plane
// only: their fallback writers share one consumer group.
func TestFallbackWriterOnceAcrossControlPlanes(t *testing.T) {
	const n = 50
	url, key, admin := testRedis(t)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateUser(ctx, store.User{ID: "u_" + team, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTeam(ctx, store.Team{ID: team, Name: team, CreatedAt: time.Now()}, "u_"+team); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	by := map[string][]string{}
	ag := fakehost.New()
	for _, cp := range []string{"cp-a", "cp-b"} {
		ev, err := redis.New(ctx, redis.Config{URL: url, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ev.Close() })
		svc, err := New(Config{
			Store:  &countingStore{Store: st, mu: &mu, by: by, cp: cp},
			Events: ev, Hosts: fakehost.Hosts{Host: Host{ID: "h1", Agent: ag}},
			Holder: cp, ReconcileInterval: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close(10 * time.Second) })
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { svc.Run(runCtx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	pub, err := redis.New(ctx, redis.Config{URL: url, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })

	starting := func() nestbox.CapsuleEvent {
		now := time.Now().UTC().Truncate(time.Microsecond)
		id := capsulespec.NewID()
		c := store.Capsule{Capsule: nestbox.Capsule{ID: id, TeamID: team, Template: "base", Status: nestbox.StatusStarting,
			VCPUs: 1, MemoryMB: 512, HostID: "h1", CreatedAt: now}, UpdatedAt: now}
		if err := st.CreateCapsule(ctx, c); err != nil {
			t.Fatal(err)
		}
		return nestbox.CapsuleEvent{CapsuleID: id, From: nestbox.StatusStarting, To: nestbox.StatusRunning, At: now, EnvdVersion: "9.9.9"}
	}
	status := func(id string) nestbox.Status {
		c, err := st.GetCapsule(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return c.Status
	}
	// The group begins when the first fallback writer joins it, in the
	// background: a warmup change is published until it is applied.
	warm := starting()
	publishUntil(t, pub, warm, func() bool { return status(warm.CapsuleID) == nestbox.StatusRunning })

	evs := make([]nestbox.CapsuleEvent, n)
	for i := range evs {
		evs[i] = starting()
	}
	for _, ev := range evs {
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, ev := range evs {
		for status(ev.CapsuleID) != nestbox.StatusRunning {
			if time.Now().After(deadline) {
				t.Fatalf("capsule %s is still %s: no fallback writer applied its change", ev.CapsuleID, status(ev.CapsuleID))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Every entry delivered and acknowledged: no application is left to
	// come, the counts are final.
	last, err := admin.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil || len(last) != 1 {
		t.Fatalf("newest entry of %s: %v, %v", key, last, err)
	}
	for {
		groups, err := admin.XInfoGroups(ctx, key).Result()
		if err != nil {
			t.Fatalf("XINFO GROUPS %s: %v", key, err)
		}
		if len(groups) != 1 {
			t.Fatalf("groups of %s: %+v, want the fallback writers' one", key, groups)
		}
		if g := groups[0]; g.Pending == 0 && g.LastDeliveredID == last[0].ID {
			t.Logf("group %s: %d consumers", g.Name, g.Consumers)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group still has entries to deliver or acknowledge: %+v", groups[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	per := map[string]int{}
	for _, ev := range evs {
		got := by[ev.CapsuleID]
		if len(got) != 1 {
			t.Fatalf("change of %s applied by %v, want by one control plane once", ev.CapsuleID, got)
		}
		per[got[0]]++
	}
	t.Logf("applications per control plane: %v", per)
}
