package lifecycle_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events"
	"nestbox.dev/internal/events/memory"
	"nestbox.dev/internal/events/redis"
	. "nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/testenv"
)

// flakyStream is an events.Stream whose first fails Consume calls fail at
// once, as a stream that is down when the control plane starts.
type flakyStream struct {
	events.Stream

	mu    sync.Mutex
	fails int
	calls int
}

func (f *flakyStream) Consume(ctx context.Context, cfg events.GroupConfig, handle func(context.Context, nestbox.CapsuleEvent) error) error {
	f.mu.Lock()
	f.calls++
	fail := f.calls <= f.fails
	f.mu.Unlock()
	if fail {
		return errdefs.Unavailable("consume %d of %d fails", f.calls, f.fails)
	}
	return f.Stream.Consume(ctx, cfg, handle)
}

// runService runs f.svc until the test ends.
func runService(t *testing.T, f *fixture) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// unrecorded puts a starting capsule in the store and its sandbox on the
// host, as another control plane instance whose store write of "running"
// failed would leave it, and returns the event that instance published.
func unrecorded(t *testing.T, f *fixture, n int) nestbox.CapsuleEvent {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	id := capsulespec.NewID()
	c := store.Capsule{Capsule: nestbox.Capsule{ID: id, TeamID: team, Template: "base", Status: nestbox.StatusStarting,
		VCPUs: 1, MemoryMB: 512, HostID: "h1", CreatedAt: now}, UpdatedAt: now}
	if err := f.store.CreateCapsule(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := f.agent.CreateSandbox(ctx, connect.NewRequest(fakehost.CreateRequest(id))); err != nil {
		t.Fatal(err)
	}
	started := now.Add(time.Second)
	expires := now.Add(time.Hour + time.Duration(n)*time.Minute)
	return nestbox.CapsuleEvent{CapsuleID: id, From: nestbox.StatusStarting, To: nestbox.StatusRunning, At: started,
		EnvdVersion: fmt.Sprintf("9.9.%d", n), StartedAt: &started, ExpiresAt: &expires}
}

// applied waits until the store has every field of ev.
func applied(t *testing.T, f *fixture, ev nestbox.CapsuleEvent) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := f.store.GetCapsule(context.Background(), ev.CapsuleID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == ev.To {
			if c.EnvdVersion != ev.EnvdVersion || c.StartedAt == nil || !c.StartedAt.Equal(*ev.StartedAt) || c.ExpiresAt == nil || !c.ExpiresAt.Equal(*ev.ExpiresAt) {
				t.Fatalf("capsule %s after the event: envd %q, started %v, expires %v; want %q, %v, %v",
					ev.CapsuleID, c.EnvdVersion, c.StartedAt, c.ExpiresAt, ev.EnvdVersion, *ev.StartedAt, *ev.ExpiresAt)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("capsule %s is still %s: the consumer did not apply the event", ev.CapsuleID, c.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsumerRetriesConsume: a stream whose first Consume calls fail does
// not stop the fallback consumer; once it consumes it applies every field
// of a change.
func TestConsumerRetriesConsume(t *testing.T) {
	flaky := &flakyStream{Stream: memory.New(), fails: 3}
	f := newFixture(t, func(c *Config) { c.Events = flaky })
	ev := unrecorded(t, f, 1)
	runService(t, f)
	// The group begins with the consumer's first successful Consume, in
	// the background: publish until applied.
	publishUntil(t, flaky, ev, func() bool { return statusOf(t, f, ev.CapsuleID) == ev.To })
	applied(t, f, ev)
	flaky.mu.Lock()
	defer flaky.mu.Unlock()
	if flaky.calls != flaky.fails+1 {
		t.Fatalf("Consume called %d times, want %d (%d failures, then one that runs)", flaky.calls, flaky.fails+1, flaky.fails)
	}
}

// redisServer is a redis-server process of the test's own, on a port of
// its own, with no persistence: a restart loses every key.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T, port int, dir string) *redisServer {
	t.Helper()
	bin := testenv.RequireCommand(t, "redis-server")
	r := &redisServer{t: t, port: port, dir: dir}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	r.cmd.Args = append(r.cmd.Args, "--logfile", filepath.Join(dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.kill)
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.Dial("tcp", r.addr())
		if err == nil {
			conn.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not come up: %v", r.addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// kill SIGKILLs the server and waits for it to exit.
func (r *redisServer) kill() {
	if r.cmd.ProcessState != nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestConsumerSurvivesRedisRestart runs the fallback consumer on a Redis
// event stream, kills Redis and starts it again on the same port (empty:
// no persistence), and checks that a change another instance publishes
// after the restart is applied with every field.
func TestConsumerSurvivesRedisRestart(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	srv := startRedis(t, port, dir)
	url := "redis://" + srv.addr() + "/0"
	ctx := context.Background()
	mine, err := redis.New(ctx, redis.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mine.Close() })
	// The other control plane instance, which publishes.
	other, err := redis.New(ctx, redis.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	f := newFixture(t, func(c *Config) { c.Events = mine })
	runService(t, f)

	// Before the restart: publish until the consumer's group exists
	// and it applied the event.
	before := unrecorded(t, f, 1)
	publishUntil(t, other, before, func() bool { return statusOf(t, f, before.CapsuleID) == before.To })
	applied(t, f, before)

	srv.kill()
	srv = startRedis(t, port, dir)

	after := unrecorded(t, f, 2)
	publishUntil(t, other, after, func() bool { return statusOf(t, f, after.CapsuleID) == after.To })
	applied(t, f, after)
}

// publishUntil publishes ev, again every half second while the stream
// refuses it or done says the consumer has not applied it yet: a publish
// before the consumer's group exists is not seen by it, and applying an
// event twice is harmless (compare-and-set).
func publishUntil(t *testing.T, s events.Stream, ev nestbox.CapsuleEvent, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("event for %s not applied within 30 s of publishing", ev.CapsuleID)
		}
		if err := s.Publish(context.Background(), ev); err != nil {
			t.Logf("publish: %v (retrying)", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func statusOf(t *testing.T, f *fixture, id string) nestbox.Status {
	t.Helper()
	c, err := f.store.GetCapsule(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Status
}
