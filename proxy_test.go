package nestbox_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHTTPClientAddsKeyOnlyForControlPlane(t *testing.T) {
	var otherSawKey bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherSawKey = r.Header.Get("X-API-Key") != ""
	}))
	defer other.Close()
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/proxy/cap1/8080/hello":
			_, _ = io.WriteString(w, "hi from 8080")
		case "/proxy/cap1/8080/away":
			http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	hc := c.HTTPClient()
	get := func(url string) string {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	base := c.Capsule("cap1").ProxyURL(8080)
	if got := get(base + "hello"); got != "hi from 8080" {
		t.Errorf("GET %shello = %q", base, got)
	}
	get(base + "away")
	if otherSawKey {
		t.Error("the API key was sent to another host after a redirect")
	}
}
