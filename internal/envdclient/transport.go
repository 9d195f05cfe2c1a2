package envdclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"sync"
)

// transport adds the access token to every request and, for the RPCs,
// catches plain-HTTP JSON errors ({"code": <status>, "message": ...}) that
// come from the agent's proxy (502: the capsule is gone) or from envd's
// token check (401). connect-go turns such an answer into a code from the
// HTTP status but drops its body, and with it the message; the transport
// copies the message into the call's failure slot first.
type transport struct {
	base  http.RoundTripper
	token string
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.token != "" {
		// A RoundTripper must not modify the request it is given.
		req = req.Clone(req.Context())
		req.Header.Set("X-Access-Token", t.token)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode == http.StatusOK {
		return resp, err
	}
	if slot, ok := req.Context().Value(failureKey{}).(*failure); ok {
		slot.capture(resp)
	}
	return resp, nil
}

// failureKey is the context key of a call's failure slot.
type failureKey struct{}

// failure is where the transport leaves the plain-HTTP error of one call.
// Like net/http/httptrace's hooks, it travels in the request's context,
// because connect-go gives no access to the HTTP response of a failed call.
type failure struct {
	mu      sync.Mutex
	status  int
	message string
}

// withFailure returns ctx with a fresh failure slot.
func withFailure(ctx context.Context) (context.Context, *failure) {
	f := &failure{}
	return context.WithValue(ctx, failureKey{}, f), f
}

// maxErrorBody caps how much of an error answer is read.
const maxErrorBody = 64 << 10

// capture reads a plain-HTTP JSON error from resp and puts back what it
// read, so the response reaches connect-go unchanged. A Connect error body
// (its code is a string) is not recorded: connect-go reads that one itself.
func (f *failure) capture(resp *http.Response) {
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if err != nil {
		return
	}
	msg, ok := plainError(head)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.message = resp.StatusCode, msg
}

// get returns the recorded status and message; status is 0 when none was.
func (f *failure) get() (int, string) {
	if f == nil {
		return 0, ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, f.message
}

// plainError parses envd's and the agent's error body, whose code is the
// HTTP status as a number.
func plainError(body []byte) (string, bool) {
	var e struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil || e.Code == nil || e.Message == "" {
		return "", false
	}
	return e.Message, true
}
