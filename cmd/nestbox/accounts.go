package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"nestbox.dev/internal/mail"
	nbplatform "nestbox.dev/platform"
)

// mailFlags choose the Mailer of the account service: SMTP when
// --smtp-addr is set, else the development log mailer.
type mailFlags struct {
	addr, from, user string
	insecure         bool
	// linkKeyFile holds the key that signs mailed links; "" means
	// <data-dir>/link-key, made on first use.
	linkKeyFile string
}

func registerMailFlags(fs *flag.FlagSet) *mailFlags {
	mf := &mailFlags{}
	fs.StringVar(&mf.addr, "smtp-addr", env("NESTBOX_SMTP_ADDR", ""), "mail server host:port for account mail (env NESTBOX_SMTP_ADDR); unset: mails are written to the log, links included, for development")
	fs.StringVar(&mf.from, "smtp-from", env("NESTBOX_SMTP_FROM", "Nestbox <noreply@localhost>"), "sender of account mail (env NESTBOX_SMTP_FROM)")
	fs.StringVar(&mf.user, "smtp-user", env("NESTBOX_SMTP_USER", ""), "SMTP user; the password is read from env NESTBOX_SMTP_PASSWORD only, never a flag (env NESTBOX_SMTP_USER)")
	fs.BoolVar(&mf.insecure, "smtp-insecure", false, "allow a mail server without STARTTLS (mail in clear)")
	fs.StringVar(&mf.linkKeyFile, "link-key-file", env("NESTBOX_LINK_KEY_FILE", ""), "file (mode 0600) of the key that signs verification and reset links, at least 32 bytes (env NESTBOX_LINK_KEY_FILE; default <data-dir>/link-key, made on first start); control planes sharing a database must share it")
	return mf
}

// mailer returns the Mailer the flags choose.
func (mf *mailFlags) mailer(log *slog.Logger) (mail.Mailer, error) {
	if mf.addr == "" {
		log.Warn("no --smtp-addr: account mails (verification and reset links) are written to this log; set --smtp-addr for a platform with users other than you")
		return mail.Log{Logger: log.With("component", "mail")}, nil
	}
	if mf.user == "" && os.Getenv("NESTBOX_SMTP_PASSWORD") != "" {
		return nil, errors.New("NESTBOX_SMTP_PASSWORD is set without --smtp-user")
	}
	return mail.NewSMTP(mail.SMTPConfig{Addr: mf.addr, From: mf.from, Username: mf.user,
		Password: os.Getenv("NESTBOX_SMTP_PASSWORD"), Insecure: mf.insecure})
}

// apply sets the platform's Mailer and LinkKey from the flags: the key in
// --link-key-file, or nil for <data-dir>/link-key.
func (mf *mailFlags) apply(cfg *nbplatform.Config, log *slog.Logger) error {
	m, err := mf.mailer(log)
	if err != nil {
		return err
	}
	cfg.Mailer = m
	if mf.linkKeyFile == "" {
		return nil
	}
	b, err := os.ReadFile(mf.linkKeyFile)
	if err != nil {
		return fmt.Errorf("--link-key-file: %w", err)
	}
	if cfg.LinkKey = bytes.TrimSpace(b); len(cfg.LinkKey) < 32 {
		return fmt.Errorf("--link-key-file: %s holds %d bytes, want at least 32", mf.linkKeyFile, len(cfg.LinkKey))
	}
	return nil
}
