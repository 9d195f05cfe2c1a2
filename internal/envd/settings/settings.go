// Package settings holds the sandbox-wide settings that the platform sets
// through envd's POST /init: env vars for every process, the access token,
// and the default user and working directory. It is imported by envd's server
// and its services; it imports nothing of Nestbox's.
package settings

import (
	"maps"
	"sync"
	"time"
)

// Settings is safe for concurrent use. The zero value is not usable: call New.
type Settings struct {
	mu             sync.RWMutex
	envVars        map[string]string
	accessToken    string
	defaultUser    string
	defaultWorkdir string
	lastInit       time.Time
}

// New returns settings with the given defaults and no env vars or token.
// An empty defaultWorkdir means the user's home directory.
func New(defaultUser, defaultWorkdir string) *Settings {
	return &Settings{envVars: map[string]string{}, defaultUser: defaultUser, defaultWorkdir: defaultWorkdir}
}

// Update is one /init request. Zero fields leave the current value alone;
// AccessToken is a pointer so that an empty string can clear the token.
type Update struct {
	EnvVars        map[string]string
	AccessToken    *string
	DefaultUser    string
	DefaultWorkdir string
	// Timestamp orders updates: one older than the last applied one is
	// ignored, so a retried /init cannot roll settings back. Zero always
	// applies.
	Timestamp time.Time
}

// Apply applies u and reports whether it did (false: it was stale).
func (s *Settings) Apply(u Update) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !u.Timestamp.IsZero() {
		if u.Timestamp.Before(s.lastInit) {
			return false
		}
		s.lastInit = u.Timestamp
	}
	maps.Copy(s.envVars, u.EnvVars)
	if u.AccessToken != nil {
		s.accessToken = *u.AccessToken
	}
	if u.DefaultUser != "" {
		s.defaultUser = u.DefaultUser
	}
	if u.DefaultWorkdir != "" {
		s.defaultWorkdir = u.DefaultWorkdir
	}
	return true
}

// EnvVars returns a copy of the sandbox-wide env vars.
func (s *Settings) EnvVars() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return maps.Clone(s.envVars)
}

// AccessToken returns the token every request must carry; "" means none.
func (s *Settings) AccessToken() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.accessToken
}

// DefaultUser returns the user that requests without a user run as.
func (s *Settings) DefaultUser() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.defaultUser
}

// DefaultWorkdir returns the working directory for processes started without
// one; "" means the user's home.
func (s *Settings) DefaultWorkdir() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.defaultWorkdir
}
