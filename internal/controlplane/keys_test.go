package controlplane

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/events/redis"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/server"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
	"nestbox.dev/internal/testenv"
)

// TestKeyRevokedAcrossControlPlanes runs two control planes on one store
// and one Redis, with key caches that would trust a key for an hour: a key
// revoked through one is refused by the other once the revocation's notice
// reached it, and the other keys still work there.
func TestKeyRevokedAcrossControlPlanes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := os.Getenv("NESTBOX_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:56379/0"
	}
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatalf("NESTBOX_TEST_REDIS_URL %q: %v", url, err)
	}
	admin := goredis.NewClient(opts)
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		testenv.Missing(t, fmt.Sprintf("redis at %s: %v", url, err))
	}
	streamKey := "nestbox:test:" + rand.Text()
	defer admin.Del(context.Background(), streamKey)

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateUser(ctx, store.User{ID: "u", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateTeam(ctx, store.Team{ID: "team", Name: "team", CreatedAt: time.Now()}, "u"); err != nil {
		t.Fatal(err)
	}
	newKey := func(id string) string {
		secret, hash := apikey.New()
		if err := st.CreateAPIKey(ctx, store.APIKey{ID: id, TeamID: "team", Name: id, Prefix: apikey.DisplayPrefix(secret), Hash: hash, CreatedAt: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	revoked, kept := newKey("key_revoked"), newKey("key_kept")

	var addrs []string
	for range 2 {
		ev, err := redis.New(ctx, redis.Config{URL: url, Key: streamKey})
		if err != nil {
			t.Fatal(err)
		}
		defer ev.Close()
		cp, err := New(Config{
			Store: st, Events: ev,
			Hosts:       fakehost.Hosts{Host: lifecycle.Host{ID: "h1", Agent: fakehost.New()}},
			KeyCacheTTL: time.Hour, // only the notice can make a revoked key fail
		})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cp.Run(ctx, ln) }()
		defer func() { cancel(); <-done }()
		addrs = append(addrs, "http://"+ln.Addr().String())
	}
	status := func(addr, method, path, key string) int {
		t.Helper()
		req, _ := http.NewRequest(method, addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Both control planes listen for notices before the revocation: a
	// notice sent earlier would reach nobody.
	channel := streamKey + ":notice:" + server.KeysRevokedTopic
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := admin.PubSubNumSub(ctx, channel).Result()
		if err == nil && n[channel] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers of %s: %v, %v; want the two control planes", channel, n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The second control plane caches the key.
	for _, key := range []string{revoked, kept} {
		if got := status(addrs[1], "GET", "/v1/capsules", key); got != http.StatusOK {
			t.Fatalf("list with a live key on the second control plane: %d, want 200", got)
		}
	}
	if got := status(addrs[0], "DELETE", "/v1/keys/key_revoked", kept); got != http.StatusNoContent {
		t.Fatalf("revoke through the first control plane: %d, want 204", got)
	}
	if got := status(addrs[0], "GET", "/v1/capsules", revoked); got != http.StatusUnauthorized {
		t.Fatalf("the revoked key on the control plane that revoked it: %d, want 401", got)
	}
	// Bounded by patience, not by a time the test asserts.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := status(addrs[1], "GET", "/v1/capsules", revoked)
		if got == http.StatusUnauthorized {
			break
		}
		if got != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("the revoked key on the other control plane: still %d after 30 s (its cache keeps keys for an hour), want 401", got)
		}
	}
	if got := status(addrs[1], "GET", "/v1/capsules", kept); got != http.StatusOK {
		t.Fatalf("a key that was not revoked on the other control plane: %d, want 200", got)
	}
}
