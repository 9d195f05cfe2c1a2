package server

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"nestbox.dev"
	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

const maxKeyName = 100

// defaultMaxKeysPerTeam is Config.MaxKeysPerTeam's default.
const defaultMaxKeysPerTeam = 100

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req nestbox.CreateAPIKeyRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" || utf8.RuneCountInString(req.Name) > maxKeyName {
		s.writeError(w, r, errdefs.Invalid("name: want 1 to %d characters", maxKeyName))
		return
	}
	k, key, err := s.mintKey(r, req.Name)
	s.record(r, teamEntry("api_key.create", k.ID, map[string]string{"name": req.Name}), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, nestbox.APIKeyCreated{APIKey: publicKey(k), Key: key})
}

// mintKey makes and stores a key named name for r's team, if r's user may
// (the team's role rule) and the team is under its limit; it returns the
// key and its secret.
func (s *Server) mintKey(r *http.Request, name string) (store.APIKey, string, error) {
	// Who may mint keys is the team's role rule: its owner and admins,
	// members where the team allows it. A key made by no known user (made
	// before keys recorded their maker) keeps minting as it always did.
	if by := creator(r); by != "" && s.cfg.Teams != nil {
		if err := s.cfg.Teams.CanMintKeys(r.Context(), team(r), by); err != nil {
			return store.APIKey{}, "", err
		}
	}
	// Counted, not enforced in the store: concurrent creates may pass the
	// limit by a few, which is all it must stop (keys without bound).
	ks, err := s.store.ListAPIKeys(r.Context(), team(r))
	if err != nil {
		return store.APIKey{}, "", err
	}
	if len(ks) >= s.cfg.MaxKeysPerTeam {
		return store.APIKey{}, "", fmt.Errorf("the team has %d API keys, its limit; delete one first: %w", len(ks), errdefs.ErrExhausted)
	}
	key, hash := apikey.New()
	k := store.APIKey{
		ID:        "key_" + strings.ToLower(rand.Text()[:16]),
		TeamID:    team(r),
		Name:      name,
		Prefix:    apikey.DisplayPrefix(key),
		Hash:      hash,
		CreatedBy: creator(r),
		CreatedAt: s.cfg.Now().UTC(),
	}
	if err := s.store.CreateAPIKey(r.Context(), k); err != nil {
		return store.APIKey{}, "", err
	}
	return k, key, nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	ks, err := s.store.ListAPIKeys(r.Context(), team(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := nestbox.APIKeyList{Keys: make([]nestbox.APIKey, len(ks))}
	for i, k := range ks {
		out.Keys[i] = publicKey(k)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) {
	err := s.store.DeleteAPIKey(r.Context(), team(r), r.PathValue("id"))
	if err == nil {
		s.keysRevoked(r.Context())
	}
	s.record(r, teamEntry("api_key.revoke", r.PathValue("id"), nil), err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func publicKey(k store.APIKey) nestbox.APIKey {
	return nestbox.APIKey{ID: k.ID, TeamID: k.TeamID, Name: k.Name, Prefix: k.Prefix, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt}
}
