package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nestbox.dev"
)

// The log-in session of `nestbox account login`, kept beside the
// credentials file: <data-dir>/session.json, readable by its owner only.
// While it exists, the client verbs act as its user (in its team) unless
// --api-key or NESTBOX_API_KEY say otherwise; the bootstrap key of the
// credentials file comes after it.

// savedSession is the session file's JSON.
type savedSession struct {
	URL   string `json:"url"`
	Email string `json:"email"`
	nestbox.Tokens
}

// refreshBefore is how long before its access token expires a session is
// refreshed: a command started just before would otherwise fail midway.
const refreshBefore = time.Minute

func sessionPath(stdio IO) string {
	return filepath.Join(filepath.Dir(nestbox.CredentialsPath(stdio.getenv(nestbox.EnvDataDir))), "session.json")
}

// loadSession reads the session file; ok is false when there is none.
func loadSession(stdio IO) (s savedSession, ok bool, err error) {
	b, err := os.ReadFile(sessionPath(stdio))
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("read session: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil || s.URL == "" || s.AccessToken == "" {
		return s, false, fmt.Errorf("read session: %s is not a session (remove it, or run `nestbox account login`)", sessionPath(stdio))
	}
	return s, true, nil
}

func saveSession(stdio IO, s savedSession) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writePrivate(sessionPath(stdio), append(b, '\n')); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// removeSession deletes the session file; none is no error.
func removeSession(stdio IO) error {
	if err := os.Remove(sessionPath(stdio)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove session: %w", err)
	}
	return nil
}

// liveSession returns the saved session for the control plane at url (""
// means any), its access token refreshed (and saved) when it is about to
// expire. ok is false when there is no session for that URL. A session
// whose refresh fails is an error, not a fallback to another credential:
// the command would act as someone else.
func liveSession(ctx context.Context, stdio IO, url string) (savedSession, bool, error) {
	s, ok, err := loadSession(stdio)
	if err != nil || !ok {
		return s, false, err
	}
	if url != "" && strings.TrimSuffix(url, "/") != strings.TrimSuffix(s.URL, "/") {
		return s, false, nil
	}
	if time.Until(s.ExpiresAt) > refreshBefore {
		return s, true, nil
	}
	pub, err := nestbox.NewPublic(nestbox.Config{URL: s.URL, UserAgent: "nestbox-cli"})
	if err != nil {
		return s, false, err
	}
	t, err := pub.Refresh(ctx, s.RefreshToken)
	if err != nil {
		return s, false, fmt.Errorf("the session of %s has ended (%w): run `nestbox account login` again", s.Email, err)
	}
	s.Tokens = t
	if err := saveSession(stdio, s); err != nil {
		return s, false, err
	}
	return s, true, nil
}
