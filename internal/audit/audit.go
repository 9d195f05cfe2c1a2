// Package audit is the control plane's audit log: who did what to which
// resource, in a team's log (scope team) or the platform's (scope admin,
// under the platform team). Every caller builds its entries the same way,
// with an Entry given to Logger.Record, which checks it and fills in its
// ID, time and status; the log is read back through Logger.List. The
// Logger also anonymises a purged user's entries (Anonymise, the account
// purge's BeforePurge) and bounds the log (Run): it deletes entries older
// than the retention and each team's oldest beyond its cap.
//
// Entry is the public nestbox.AuditEntry, so that a program embedding the
// control plane writes entries of the same type. The HTTP layer
// (internal/server) and the control plane's assembly (internal/controlplane,
// cmd/nestbox) import this package.
package audit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/store"
)

// Entry is one record of the audit log.
type Entry = nestbox.AuditEntry

// Actor is who did an audited action.
type Actor = nestbox.AuditActor

// UserActor is a user acting through a session.
func UserActor(id, name string) Actor {
	return Actor{Type: nestbox.AuditActorUser, ID: id, Name: name}
}

// KeyActor is an API key.
func KeyActor(id, name string) Actor {
	return Actor{Type: nestbox.AuditActorAPIKey, ID: id, Name: name}
}

// SystemActor is the platform itself: work no user or key asked for.
func SystemActor() Actor {
	return Actor{Type: nestbox.AuditActorSystem, Name: "nestbox"}
}

// Defaults of Config.
const (
	DefaultRetention      = 400 * 24 * time.Hour
	DefaultMaxTeamEntries = 200_000
	DefaultPurgeEvery     = time.Hour
)

// Bounds of an entry's metadata: callers put a few facts there, never a
// payload.
const (
	MaxMetadataKeys  = 32
	MaxMetadataKey   = 64
	MaxMetadataValue = 1024
)

// retentionLease is the lease under which one control plane at a time
// deletes old entries and enforces the teams' caps (store.AcquireLease, as
// the host monitor's). It keeps the name it had before the caps, so that
// control planes of both versions share it during an upgrade.
const retentionLease = "audit-retention"

// purgeBatch is how many entries one delete of the retention or of a
// team's cap removes at most: a short write transaction, which SQLite's one
// writer needs.
const purgeBatch = 1000

// Store is what the Logger needs of the store.
type Store interface {
	InsertAuditEntry(ctx context.Context, e nestbox.AuditEntry) error
	ListAuditEntries(ctx context.Context, f store.AuditFilter) ([]nestbox.AuditEntry, string, error)
	AnonymiseAuditEntries(ctx context.Context, userID string) (int, error)
	DeleteAuditEntriesBefore(ctx context.Context, before time.Time, limit int) (int, error)
	AuditTeamsOver(ctx context.Context, keep int) ([]string, error)
	DeleteAuditEntriesBeyond(ctx context.Context, teamID string, keep, limit int) (int, error)
	AcquireLease(ctx context.Context, name, holder string, until, now time.Time) (bool, error)
}

// Config configures a Logger. Store is required.
type Config struct {
	Store  Store
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Retention is how long entries are kept; zero means
	// DefaultRetention, negative keeps them forever.
	Retention time.Duration
	// MaxTeamEntries is how many scope team entries a team keeps: its
	// oldest beyond them are deleted. Zero means DefaultMaxTeamEntries,
	// negative no cap. Scope admin entries follow the retention only.
	MaxTeamEntries int
	// PurgeEvery is how often Run deletes entries past the retention and
	// the caps; zero means DefaultPurgeEvery.
	PurgeEvery time.Duration
	// Holder names this control plane in the retention's lease; "" means
	// a random name.
	Holder string
}

// Logger writes and reads the audit log. It is safe for concurrent use.
type Logger struct {
	cfg Config
	log *slog.Logger
}

// New returns a Logger.
func New(cfg Config) (*Logger, error) {
	if cfg.Store == nil {
		return nil, errors.New("audit: Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.MaxTeamEntries == 0 {
		cfg.MaxTeamEntries = DefaultMaxTeamEntries
	}
	if cfg.PurgeEvery == 0 {
		cfg.PurgeEvery = DefaultPurgeEvery
	}
	if cfg.PurgeEvery < 0 {
		return nil, errors.New("audit: PurgeEvery must not be negative")
	}
	if cfg.Holder == "" {
		cfg.Holder = "cp-" + rand.Text()[:12]
	}
	return &Logger{cfg: cfg, log: cfg.Logger}, nil
}

// Record checks e and stores it. It fills in what the caller leaves
// zero: the ID, the time (now; any time is kept at microseconds, in UTC,
// the precision every store keeps), the status (success) and the resource
// type (the action's part before its first dot). An entry it cannot
// accept is ErrInvalid: a scope other than team or admin, a team entry
// without a team, an unknown actor type, an action not of the form
// "type.verb" or not of its resource type, metadata past its bounds.
func (l *Logger) Record(ctx context.Context, e Entry) error {
	if err := complete(&e, l.cfg.Now()); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	if err := l.cfg.Store.InsertAuditEntry(ctx, e); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// complete checks e and fills in its zero fields.
func complete(e *Entry, now time.Time) error {
	switch e.Scope {
	case nestbox.AuditScopeTeam:
		if e.TeamID == "" {
			return errdefs.Invalid("a team entry needs its team")
		}
	case nestbox.AuditScopeAdmin:
	default:
		return errdefs.Invalid("scope %q: want team or admin", e.Scope)
	}
	switch e.Actor.Type {
	case nestbox.AuditActorUser, nestbox.AuditActorAPIKey, nestbox.AuditActorSystem:
	default:
		return errdefs.Invalid("actor type %q: want user, api_key or system", e.Actor.Type)
	}
	rt, verb, ok := strings.Cut(e.Action, ".")
	if !ok || rt == "" || verb == "" {
		return errdefs.Invalid("action %q: want resource_type.verb, e.g. capsule.pause", e.Action)
	}
	if e.ResourceType == "" {
		e.ResourceType = rt
	}
	if e.ResourceType != rt {
		return errdefs.Invalid("action %q is not of resource type %q", e.Action, e.ResourceType)
	}
	switch e.Status {
	case "":
		e.Status = nestbox.AuditSuccess
	case nestbox.AuditSuccess, nestbox.AuditFailure:
	default:
		return errdefs.Invalid("status %q: want success or failure", e.Status)
	}
	if len(e.Metadata) > MaxMetadataKeys {
		return errdefs.Invalid("%d metadata keys: at most %d", len(e.Metadata), MaxMetadataKeys)
	}
	for k, v := range e.Metadata {
		if k == "" || len(k) > MaxMetadataKey || len(v) > MaxMetadataValue || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return errdefs.Invalid("metadata %.64q: want a key of 1 to %d bytes and a value of at most %d, UTF-8", k, MaxMetadataKey, MaxMetadataValue)
		}
	}
	if e.ID == "" {
		e.ID = "aud_" + strings.ToLower(rand.Text())
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	return nil
}

// List returns a page of the entries f selects, newest first, and the
// cursor of the next page. f.Action may be given without its resource
// type's prefix ("pause" with ResourceType "capsule"); an action needs a
// resource type, and a bad cursor is ErrInvalid.
func (l *Logger) List(ctx context.Context, f store.AuditFilter) ([]Entry, string, error) {
	if f.Action != "" && f.ResourceType != "" && !strings.Contains(f.Action, ".") {
		f.Action = f.ResourceType + "." + f.Action
	}
	if f.Action != "" && f.ResourceType == "" {
		return nil, "", errdefs.Invalid("action %q needs resource_type: actions nest within a resource type (resource_type=capsule&action=pause)", f.Action)
	}
	return l.cfg.Store.ListAuditEntries(ctx, f)
}

// Anonymise removes a user from the audit log before the user is purged
// (store.AnonymiseAuditEntries): its ID as actor and resource, its name
// and its email. The account purge deletes the user only if it succeeds.
func (l *Logger) Anonymise(ctx context.Context, userID string) error {
	n, err := l.cfg.Store.AnonymiseAuditEntries(ctx, userID)
	if err != nil {
		return err
	}
	l.log.Info("anonymised audit entries of a purged user", "user", userID, "entries", n)
	return nil
}

// Purge deletes the entries older than the retention and then each
// team's oldest scope team entries beyond MaxTeamEntries, a batch at a
// time, and returns how many it deleted. A negative retention or cap skips
// its part.
func (l *Logger) Purge(ctx context.Context) (int, error) {
	total := 0
	if l.cfg.Retention >= 0 {
		before := l.cfg.Now().Add(-l.cfg.Retention)
		n, err := batches(func() (int, error) { return l.cfg.Store.DeleteAuditEntriesBefore(ctx, before, purgeBatch) })
		total += n
		if err != nil {
			return total, fmt.Errorf("purge audit entries: %w", err)
		}
	}
	if l.cfg.MaxTeamEntries < 0 {
		return total, nil
	}
	teams, err := l.cfg.Store.AuditTeamsOver(ctx, l.cfg.MaxTeamEntries)
	if err != nil {
		return total, fmt.Errorf("purge audit entries: %w", err)
	}
	for _, team := range teams {
		n, err := batches(func() (int, error) {
			return l.cfg.Store.DeleteAuditEntriesBeyond(ctx, team, l.cfg.MaxTeamEntries, purgeBatch)
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("purge audit entries of team %s: %w", team, err)
		}
		l.log.Info("deleted a team's audit entries beyond its cap", "team", team, "deleted", n, "max_entries", l.cfg.MaxTeamEntries)
	}
	return total, nil
}

// batches calls del until it deletes less than a batch and returns the
// sum.
func batches(del func() (int, error)) (int, error) {
	total := 0
	for {
		n, err := del()
		total += n
		if err != nil || n < purgeBatch {
			return total, err
		}
	}
}

// Run bounds the log at once and then every PurgeEvery, until ctx is done:
// on one control plane at a time, the one holding the retention's lease
// (for two intervals, renewed at each pass). Its caller owns it and waits
// for it to return.
func (l *Logger) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.PurgeEvery)
	defer t.Stop()
	for {
		l.purgeOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *Logger) purgeOnce(ctx context.Context) {
	now := l.cfg.Now()
	held, err := l.cfg.Store.AcquireLease(ctx, retentionLease, l.cfg.Holder, now.Add(2*l.cfg.PurgeEvery), now)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("acquire the audit retention's lease", "err", err)
		}
		return
	}
	if !held {
		return
	}
	n, err := l.Purge(ctx)
	if err != nil && ctx.Err() == nil {
		l.log.Warn("delete audit entries past the retention or a team's cap", "err", err, "deleted", n)
		return
	}
	if n > 0 {
		l.log.Info("deleted audit entries past the retention or the teams' caps", "deleted", n, "retention", l.cfg.Retention, "max_team_entries", l.cfg.MaxTeamEntries)
	}
}
