// Package account is sign-up, email verification, log-in sessions,
// password reset, account deletion and its purge: the people side of the
// control plane, over store.Accounts and a mail.Mailer. The HTTP layer
// (internal/server) and the control plane's assembly import it.
//
// Secrets: passwords are kept as bcrypt hashes, session tokens as SHA-256
// hashes, and signed links are HMACs under the installation's link key;
// none of them is ever logged or put in an error message.
package account

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"nestbox.dev/internal/errdefs"
	"nestbox.dev/internal/mail"
	"nestbox.dev/internal/store"
)

// Defaults of Config's durations and limits.
const (
	DefaultSessionTTL  = 15 * time.Minute
	DefaultRefreshTTL  = 30 * 24 * time.Hour
	DefaultVerifyTTL   = 48 * time.Hour
	DefaultResetTTL    = time.Hour
	DefaultGrace       = 15 * 24 * time.Hour
	DefaultMaxSessions = 20
	DefaultPurgeEvery  = 24 * time.Hour
)

// Password lengths: bcrypt reads at most 72 bytes, and a longer password
// would be cut without a word.
const (
	MinPassword = 8
	MaxPassword = 72
	maxName     = 100
	maxEmail    = 254
)

// Config configures a Service. Store, Mailer and LinkKey are required.
type Config struct {
	Store  store.Store
	Mailer mail.Mailer
	// LinkKey signs verification and reset links; at least 32 bytes,
	// kept secret and stable (a new key voids every link out).
	LinkKey []byte
	// PublicURL is where users reach the API, e.g.
	// "https://nestbox.example.com"; links in mails point there. ""
	// means http://localhost:3000.
	PublicURL string
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// BcryptCost: zero means bcrypt.DefaultCost.
	BcryptCost int
	// Zero durations and limits mean the defaults above.
	SessionTTL, RefreshTTL, VerifyTTL, ResetTTL, Grace, PurgeEvery time.Duration
	// MaxSessions is how many sessions one user keeps; a new log-in
	// ends the oldest beyond it.
	MaxSessions int
	// BeforePurge, if set, runs for each user before it is purged; an
	// error keeps that user for the next purge. It is the seam where the
	// audit log anonymises the user's entries.
	BeforePurge func(ctx context.Context, userID string) error
	// HandedOver, if set, runs after a purge gives a team the purged user
	// owned to successor. It is the seam where the audit log records the
	// change in the team's log; it is given nothing of the purged user,
	// whose entries are anonymised by then.
	HandedOver func(ctx context.Context, teamID, successor string)
	// Holder names this control plane in the purge's lease (Run purges
	// on one control plane at a time); "" means a random name.
	Holder string
}

// Service runs the accounts. It is safe for concurrent use.
type Service struct {
	cfg   Config
	log   *slog.Logger
	store store.Store
	// dummyHash is compared against when an email has no account, so
	// that a log-in takes as long whether or not the account exists.
	dummyHash []byte
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Mailer == nil {
		return nil, errors.New("account: Store and Mailer are required")
	}
	if len(cfg.LinkKey) < 32 {
		return nil, errors.New("account: LinkKey must have at least 32 bytes")
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://localhost:3000"
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.Holder == "" {
		cfg.Holder = "accounts-" + rand.Text()[:12]
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.SessionTTL, DefaultSessionTTL}, {&cfg.RefreshTTL, DefaultRefreshTTL}, {&cfg.VerifyTTL, DefaultVerifyTTL},
		{&cfg.ResetTTL, DefaultResetTTL}, {&cfg.Grace, DefaultGrace}, {&cfg.PurgeEvery, DefaultPurgeEvery}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password of anyone"), cfg.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("account: bcrypt cost %d: %w", cfg.BcryptCost, err)
	}
	return &Service{cfg: cfg, log: cfg.Logger, store: cfg.Store, dummyHash: dummy}, nil
}

// NormalizeEmail returns email trimmed and lower-cased if it is one plain
// address, else an error of kind ErrInvalid. Emails are stored normalised,
// so one mailbox has one account.
func NormalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	a, err := netmail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > maxEmail {
		return "", errdefs.Invalid("email: want one plain address such as ada@example.com")
	}
	return e, nil
}

// checkPassword enforces the password's length in bytes.
func checkPassword(p string) error {
	if len(p) < MinPassword || len(p) > MaxPassword {
		return errdefs.Invalid("password: want %d to %d bytes", MinPassword, MaxPassword)
	}
	return nil
}

// SignUp creates an unverified account for email and mails it a
// verification link. Its answer is the same whether or not the email is
// taken, so that sign-up cannot tell who has an account: a verified email
// gets a notice; an unverified one takes the new password and a new link,
// and every earlier link stops working.
//
// The last point defeats pre-registration: someone who signs up with
// another's email first knows a password of the account that email's
// owner would verify. The owner's own sign-up replaces that password, and
// voids the link mailed to the squatter's sign-up (a link names the
// password version it verifies).
func (s *Service) SignUp(ctx context.Context, email, password, name string) error {
	email, err := NormalizeEmail(email)
	if err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > maxName || strings.ContainsAny(name, "\r\n") {
		return errdefs.Invalid("name: want at most %d characters on one line", maxName)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.cfg.BcryptCost)
	if err != nil {
		return fmt.Errorf("sign up: hash password: %w", err)
	}
	now := s.cfg.Now().UTC()
	u := store.User{ID: newID("usr_"), Email: email, Name: name, CreatedAt: now}
	err = s.store.CreateAccount(ctx, u, store.Account{UserID: u.ID, PasswordHash: string(hash), Status: store.AccountActive, CreatedAt: now})
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return s.signUpTaken(ctx, email, string(hash))
	}
	if err != nil {
		return fmt.Errorf("sign up: %w", err)
	}
	return s.sendVerify(ctx, u, 0)
}

// signUpTaken answers a sign-up for an email that has a user; hash is the
// new password's.
func (s *Service) signUpTaken(ctx context.Context, email, hash string) error {
	u, a, err := s.store.AccountByEmail(ctx, email)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil // a user without an account (the bootstrap admin): nothing to say
	}
	if err != nil {
		return fmt.Errorf("sign up: %w", err)
	}
	if a.VerifiedAt == nil && a.Status == store.AccountActive {
		if err := s.store.SetPassword(ctx, u.ID, hash, a.PasswordVersion); err != nil {
			return fmt.Errorf("sign up again: %w", err)
		}
		return s.sendVerify(ctx, u, a.PasswordVersion+1)
	}
	return s.send(ctx, noticeTaken(u.Email, s.cfg.PublicURL))
}

// sendVerify mails u a link that verifies its account while its password
// is at version.
func (s *Service) sendVerify(ctx context.Context, u store.User, version int64) error {
	tok := SignLink(s.cfg.LinkKey, Link{Purpose: PurposeVerify, Subject: u.ID, Expires: s.cfg.Now().Add(s.cfg.VerifyTTL), Version: version})
	return s.send(ctx, verifyMail(u.Email, s.cfg.PublicURL, tok, s.cfg.VerifyTTL))
}

func (s *Service) send(ctx context.Context, m mail.Message) error {
	if err := s.cfg.Mailer.Send(ctx, m); err != nil {
		return fmt.Errorf("mail %q: %w", m.Subject, errors.Join(errdefs.ErrUnavailable, err))
	}
	return nil
}

// Verify activates the account a verification link names: its email is
// verified, it gets a team of its own, and the first account to activate
// on the installation becomes platform admin. A link used again is
// ErrConflict.
func (s *Service) Verify(ctx context.Context, token string) (store.User, error) {
	l, err := ParseLink(s.cfg.LinkKey, token, PurposeVerify, s.cfg.Now())
	if err != nil {
		return store.User{}, err
	}
	u, a, err := s.store.GetAccount(ctx, l.Subject)
	if errors.Is(err, errdefs.ErrNotFound) {
		return store.User{}, errdefs.Invalid("link token: the account is gone")
	}
	if err != nil {
		return store.User{}, err
	}
	if a.VerifiedAt == nil && a.PasswordVersion != l.Version {
		return store.User{}, errdefs.Invalid("link token: replaced by a later sign-up; use the newest link")
	}
	now := s.cfg.Now().UTC()
	name := u.Name
	if name == "" {
		name = u.Email
	}
	admin, err := s.store.ActivateAccount(ctx, u.ID, store.Team{ID: newID("team_"), Name: name, CreatedAt: now}, now)
	if err != nil {
		return store.User{}, err
	}
	if admin {
		s.log.Info("first account activated: platform admin", "user", u.ID)
		u.Admin = true
	}
	return u, nil
}
