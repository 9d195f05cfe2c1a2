package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"nestbox.dev"
)

// TestGlobalFlagsAnywhere: --url and --api-key work before the group,
// between the group and the verb, and after the verb, in both spellings;
// a later one wins over an earlier one.
func TestGlobalFlagsAnywhere(t *testing.T) {
	const key = "nbx_00112233445566778899aabbccddeeff00112233"
	var (
		mu   sync.Mutex
		keys []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("X-API-Key"))
		mu.Unlock()
		if r.Header.Get("X-API-Key") != key {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(nestbox.ErrorBody{Error: nestbox.ErrorDetail{Code: "unauthenticated", Message: "invalid API key"}})
			return
		}
		json.NewEncoder(w).Encode(nestbox.CapsuleList{Capsules: []nestbox.Capsule{}})
	}))
	defer srv.Close()
	// No connection from the environment or a credentials file.
	t.Setenv("NESTBOX_URL", "")
	t.Setenv("NESTBOX_API_KEY", "")
	t.Setenv("NESTBOX_DATA_DIR", t.TempDir())

	for _, args := range [][]string{
		{"--url", srv.URL, "--api-key", key, "capsule", "ls"},
		{"--url=" + srv.URL, "-api-key=" + key, "capsule", "ls"},
		{"--api-key", key, "capsule", "--url", srv.URL, "ls"},
		{"capsule", "--url", srv.URL, "--api-key", key, "ls"},
		{"capsule", "ls", "--url", srv.URL, "--api-key", key},
		{"--url", srv.URL, "capsule", "ls", "--api-key", key},
		{"--api-key", "nbx_wrong", "--url", srv.URL, "capsule", "ls", "--api-key", key}, // the verb's wins
		{"--url", srv.URL, "--api-key", key, "template", "ls"},
	} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err != nil {
			t.Errorf("nestbox %q: %v\n%s", args, err, errOut.String())
		}
	}
	mu.Lock()
	for i, k := range keys {
		if k != key {
			t.Errorf("request %d carried key %q, want the one given", i, k)
		}
	}
	mu.Unlock()

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--api-key"}, "flag needs an argument: --api-key"},
		{[]string{"--api-key", key, "up"}, "not of \"up\""},
		{[]string{"capsule", "--url"}, "flag needs an argument: --url"},
		{[]string{"--bogus", "capsule", "ls"}, "unknown command \"--bogus\""},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("nestbox %q: err %v, want %q", tc.args, err, tc.want)
		}
	}
}
