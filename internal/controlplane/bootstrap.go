package controlplane

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nestbox.dev/internal/apikey"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Names of what Bootstrap makes.
const (
	AdminUserID   = "usr_admin"
	DefaultTeamID = "team_default"
	adminEmail    = "admin@localhost"
)

// Bootstrap makes a new installation usable: it creates the platform
// admin, the default team and, while that team has no API key, a key for
// it. A new key is handed to save (which keeps it for the CLI) before its
// hash is stored, so a crash in between leaves a team without keys, and the
// next run makes one again, rather than a key nobody knows. Each step is
// skipped when already done. It returns the new key, or "" if none was
// made.
func Bootstrap(ctx context.Context, st store.Store, save func(key string) error) (string, error) {
	now := time.Now().UTC()
	_, err := st.GetUser(ctx, AdminUserID)
	if errors.Is(err, errdefs.ErrNotFound) {
		err = st.CreateUser(ctx, store.User{ID: AdminUserID, Email: adminEmail, Name: "admin", Admin: true, CreatedAt: now})
	}
	if err != nil {
		return "", fmt.Errorf("admin user: %w", err)
	}
	_, err = st.GetTeam(ctx, DefaultTeamID)
	if errors.Is(err, errdefs.ErrNotFound) {
		err = st.CreateTeam(ctx, store.Team{ID: DefaultTeamID, Name: "default", CreatedAt: now}, AdminUserID)
	}
	if err != nil {
		return "", fmt.Errorf("default team: %w", err)
	}
	keys, err := st.ListAPIKeys(ctx, DefaultTeamID)
	if err != nil || len(keys) > 0 {
		return "", err
	}
	key, hash := apikey.New()
	if err := save(key); err != nil {
		return "", fmt.Errorf("save bootstrap API key: %w", err)
	}
	err = st.CreateAPIKey(ctx, store.APIKey{
		ID:        "key_" + strings.ToLower(rand.Text()[:16]),
		TeamID:    DefaultTeamID,
		Name:      "bootstrap",
		Prefix:    apikey.DisplayPrefix(key),
		Hash:      hash,
		CreatedBy: AdminUserID,
		CreatedAt: now,
	})
	if err != nil {
		return "", fmt.Errorf("store bootstrap API key: %w", err)
	}
	return key, nil
}

// HostToken returns the secret host agents authenticate their events with,
// kept in dataDir/host-token and made on first use.
func HostToken(dataDir string) (string, error) {
	p := filepath.Join(dataDir, "host-token")
	b, err := os.ReadFile(p)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok := rand.Text() + rand.Text()
	if err := writeFileAtomic(p, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

// LinkKey returns the key that signs the links mailed to users
// (verification, password reset), kept in dataDir/link-key and made on
// first use. A new key voids every link already mailed.
func LinkKey(dataDir string) ([]byte, error) {
	p := filepath.Join(dataDir, "link-key")
	b, err := os.ReadFile(p)
	if err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := rand.Text() + rand.Text() // 52 characters, 260 random bits
	if err := writeFileAtomic(p, []byte(key+"\n"), 0o600); err != nil {
		return nil, err
	}
	return []byte(key), nil
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
