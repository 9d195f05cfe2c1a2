package nestbox_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"nestbox.dev"
)

const testKey = "nbx_0123456789abcdef0123456789abcdef01234567"

// newTestClient serves h behind the API's key check and returns a client
// for it.
func newTestClient(t *testing.T, h http.Handler) *nestbox.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" && r.Header.Get("X-API-Key") != testKey {
			writeError(w, http.StatusUnauthorized, "unauthenticated", "bad API key")
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := nestbox.New(nestbox.Config{URL: srv.URL, APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, nestbox.ErrorBody{Error: nestbox.ErrorDetail{Code: code, Message: msg}})
}

// decodeBody decodes a JSON request body or fails the request.
func decodeBody(t *testing.T, r *http.Request, v any) {
	t.Helper()
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		t.Errorf("%s %s: decode body: %v", r.Method, r.URL.Path, err)
	}
}
