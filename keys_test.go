package nestbox_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"nestbox.dev"
)

func TestKeysAndTemplates(t *testing.T) {
	secret := "nbx_" + "0123456789abcdef0123456789abcdef01234567"
	var created nestbox.CreateAPIKeyRequest
	var deleted string
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/keys":
			decodeBody(t, r, &created)
			writeJSON(w, http.StatusCreated, nestbox.APIKeyCreated{APIKey: nestbox.APIKey{ID: "key1", Name: created.Name}, Key: secret})
		case "GET /v1/keys":
			writeJSON(w, http.StatusOK, nestbox.APIKeyList{Keys: []nestbox.APIKey{{ID: "key1"}, {ID: "key2"}}})
		case "DELETE /v1/keys/key1":
			deleted = "key1"
			w.WriteHeader(http.StatusNoContent)
		case "GET /v1/templates":
			writeJSON(w, http.StatusOK, nestbox.TemplateList{Templates: []nestbox.Template{{Name: "base"}}})
		default:
			writeError(w, http.StatusNotFound, "not_found", "key not found")
		}
	}))
	ctx := context.Background()
	k, err := c.CreateKey(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if created.Name != "ci" || k.ID != "key1" || k.Key != secret {
		t.Errorf("created %+v from %+v", k, created)
	}
	if want := "e2b_0123456789abcdef0123456789abcdef01234567"; k.E2BKey() != want {
		t.Errorf("E2BKey = %q, want %q", k.E2BKey(), want)
	}
	if keys, err := c.Keys(ctx); err != nil || len(keys) != 2 {
		t.Errorf("Keys = %+v, %v", keys, err)
	}
	if err := c.DeleteKey(ctx, "key1"); err != nil || deleted != "key1" {
		t.Errorf("DeleteKey: %v, server deleted %q", err, deleted)
	}
	if err := c.DeleteKey(ctx, "key9"); !errors.Is(err, nestbox.ErrNotFound) {
		t.Errorf("DeleteKey(key9): %v, want ErrNotFound", err)
	}
	if ts, err := c.Templates(ctx); err != nil || len(ts) != 1 || ts[0].Name != "base" {
		t.Errorf("Templates = %+v, %v", ts, err)
	}
}

func TestE2BKey(t *testing.T) {
	for key, want := range map[string]string{
		"nbx_abc": "e2b_abc",
		"e2b_abc": "",
		"nbx_":    "",
		"":        "",
	} {
		if got := (nestbox.APIKeyCreated{Key: key}).E2BKey(); got != want {
			t.Errorf("E2BKey of %q = %q, want %q", key, got, want)
		}
	}
}
