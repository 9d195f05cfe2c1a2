package controlplane

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"nestbox.dev/internal/account"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/events/memory"
	"nestbox.dev/internal/lifecycle"
	"nestbox.dev/internal/lifecycle/fakehost"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/sqlite"
)

// The bootstrap's API key keeps working with accounts on: for the team
// routes, and as platform admin while the bootstrap admin is one. The
// purge worker runs with the control plane and stops with it.
func TestBootstrapKeyWithAccounts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := Bootstrap(ctx, st, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	linkKey, err := LinkKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := LinkKey(dir); err != nil || string(again) != string(linkKey) || len(linkKey) < 32 {
		t.Fatalf("LinkKey again = %d bytes (%v), want the same %d", len(again), err, len(linkKey))
	}
	// A user deleted long ago, for the purge at start.
	old := time.Now().Add(-account.DefaultGrace - time.Hour)
	if err := st.CreateAccount(ctx, store.User{ID: "usr_old", Email: "old@example.com", CreatedAt: old},
		store.Account{UserID: "usr_old", PasswordHash: "x", Status: store.AccountActive, CreatedAt: old}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetAccountStatus(ctx, "usr_old", store.AccountActive, store.AccountDeleted, old); err != nil {
		t.Fatal(err)
	}
	acc, err := account.New(account.Config{Store: st, Mailer: mail.Log{}, LinkKey: linkKey, BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := New(Config{Store: st, Events: memory.New(), Accounts: acc,
		Hosts: fakehost.Hosts{Host: lifecycle.Host{ID: "h1", Agent: fakehost.New()}}})
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
	base := "http://" + ln.Addr().String()

	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("X-API-Key", key)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := do("GET", "/v1/capsules", ""); code != 200 {
		t.Errorf("team route with the bootstrap key: %d %s", code, b)
	}
	if err := st.CreateUser(ctx, store.User{ID: "usr_x", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if code, b := do("PUT", "/v1/admin/users/usr_x/admin", `{"admin":true}`); code != 200 {
		t.Errorf("admin route with the bootstrap key: %d %s, want 200", code, b)
	}
	if code, b := do("PUT", "/v1/admin/users/"+AdminUserID+"/admin", `{"admin":false}`); code != 200 {
		t.Fatalf("revoke the bootstrap admin: %d %s", code, b)
	}
	if code, b := do("PUT", "/v1/admin/users/usr_x/admin", `{"admin":false}`); code != 403 {
		t.Errorf("admin route with the key of a former admin: %d %s, want 403", code, b)
	}
	// The purge at start runs beside the server: wait for it (no
	// deadline of our own: go test's is the bound).
	for {
		_, err := st.GetUser(ctx, "usr_old")
		if errors.Is(err, errdefs.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal("the purge at start never removed usr_old")
		}
	}
}
