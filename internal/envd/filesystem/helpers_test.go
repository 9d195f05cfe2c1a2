package filesystem

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/proto/filesystempb/filesystempbconnect"
	"nestbox.dev/internal/testenv"
)

// testUserName is the unprivileged account the ownership tests act as.
const testUserName = "nestboxtest"

// requireTestUser returns the nestboxtest account, creating it when
// missing. It needs root.
func requireTestUser(t *testing.T) identity.User {
	t.Helper()
	testenv.EnsureUser(t, testUserName)
	u, err := identity.Lookup(testUserName)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// currentUser is the account the tests run as.
func currentUser(t *testing.T) identity.User {
	t.Helper()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	u, err := identity.Lookup(me.Username)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

type testEnv struct {
	svc      *Service
	settings *settings.Settings
	url      string
	// clients holds one client per codec: "json" (what E2B's SDK uses)
	// and "proto".
	clients map[string]filesystempbconnect.FilesystemClient
}

// newEnv serves a Service whose default user is defaultUser.
func newEnv(t *testing.T, defaultUser string) *testEnv {
	t.Helper()
	st := settings.New(defaultUser, "")
	svc, err := New(Config{Settings: st})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(filesystempbconnect.NewFilesystemHandler(svc))
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ts.Close()
		if err := svc.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testEnv{
		svc:      svc,
		settings: st,
		url:      ts.URL,
		clients: map[string]filesystempbconnect.FilesystemClient{
			"json":  filesystempbconnect.NewFilesystemClient(ts.Client(), ts.URL, connect.WithProtoJSON()),
			"proto": filesystempbconnect.NewFilesystemClient(ts.Client(), ts.URL),
		},
	}
}

// eachCodec runs f once per codec.
func (e *testEnv) eachCodec(t *testing.T, f func(t *testing.T, c filesystempbconnect.FilesystemClient)) {
	for _, name := range []string{"json", "proto"} {
		t.Run(name, func(t *testing.T) { f(t, e.clients[name]) })
	}
}

func req[T any](msg *T) *connect.Request[T] { return connect.NewRequest(msg) }

// asUser sets the Basic auth header E2B's SDK sends for a user.
func asUser[T any](r *connect.Request[T], name string) *connect.Request[T] {
	r.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(name+":")))
	return r
}

func wantCode(t *testing.T, err error, want connect.Code, what string) {
	t.Helper()
	if got := connect.CodeOf(err); err == nil || got != want {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ownerOf(t *testing.T, path string) (uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

func bg() context.Context { return context.Background() }

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
