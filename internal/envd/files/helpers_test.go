package files

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"nestbox.dev/internal/envd/identity"
	"nestbox.dev/internal/envd/settings"
	"nestbox.dev/internal/testenv"
)

// testUserName is the unprivileged account the ownership tests act as.
const testUserName = "nestboxtest"

// requireTestUser returns the nestboxtest account, creating it when
// missing. It needs root.
func requireTestUser(t testing.TB) identity.User {
	t.Helper()
	testenv.EnsureUser(t, testUserName)
	u, err := identity.Lookup(testUserName)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func currentUserName(t testing.TB) string {
	t.Helper()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return me.Username
}

// fixedUnix is the time the handler's clock shows, for signature expiry.
const fixedUnix = 1_800_000_000

type env struct {
	settings *settings.Settings
	url      string
	client   *http.Client
}

// newEnv serves a Handler whose default user is defaultUser.
func newEnv(t testing.TB, defaultUser string, maxUpload int64) *env {
	t.Helper()
	st := settings.New(defaultUser, "")
	h, err := New(Config{Settings: st, MaxUploadBytes: maxUpload, Now: func() time.Time { return time.Unix(fixedUnix, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/files", h)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	// The client must show the raw encoding: no transparent gunzip.
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(c.CloseIdleConnections)
	return &env{settings: st, url: ts.URL + "/files", client: c}
}

func (e *env) setToken(tok string) { e.settings.Apply(settings.Update{AccessToken: &tok}) }

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(t testing.TB, method string, q url.Values, hdr map[string]string, body io.Reader) response {
	t.Helper()
	u := e.url
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	r, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	res, err := e.client.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// wantError checks a JSON error answer: {"code": status, "message": ...}.
func wantError(t testing.TB, r response, status int, what string) string {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if r.status != status {
		t.Errorf("%s: got %d %s, want %d", what, r.status, r.body, status)
		return ""
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Code != status || e.Message == "" {
		t.Errorf("%s: body %q is not a JSON error with code %d", what, r.body, status)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: error Content-Type %q", what, ct)
	}
	return e.Message
}

// wantUploaded decodes a successful upload answer.
func wantUploaded(t testing.TB, r response, what string) []uploaded {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: got %d %s, want 200", what, r.status, r.body)
	}
	var out []uploaded
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("%s: answer %q: %v", what, r.body, err)
	}
	return out
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

type filePart struct {
	field, filename, content string
}

// multipartBody builds a form the way E2B's SDK does: parts named "file"
// whose raw filename is the target path.
func multipartBody(t testing.TB, parts ...filePart) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		field := p.field
		if field == "" {
			field = "file"
		}
		cd := fmt.Sprintf(`form-data; name=%q`, field)
		if p.filename != "" {
			// Quoted as browsers and undici do, not Go-escaped.
			cd += `; filename="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.filename) + `"`
		}
		h.Set("Content-Disposition", cd)
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, p.content)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func ownerOf(t testing.TB, path string) uint32 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}

// dirNames lists dir, to check that no temporary file was left.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func mustWrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newServer serves h for the test and returns its URL.
func newServer(t testing.TB, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}
