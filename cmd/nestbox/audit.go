package main

import (
	"errors"
	"flag"
	"log/slog"
	"time"

	"nestbox.dev/internal/audit"
	"nestbox.dev/internal/store"
)

// auditFlags configure the control plane's audit log.
type auditFlags struct {
	retention time.Duration
}

func registerAuditFlags(fs *flag.FlagSet) *auditFlags {
	af := &auditFlags{}
	fs.DurationVar(&af.retention, "audit-retention", audit.DefaultRetention, "how long audit entries are kept; older ones are deleted once a day (default 400 days)")
	return af
}

// logger is the audit log over st. A purge of a deleted account
// anonymises the user's entries through it first (newAccounts).
func (af *auditFlags) logger(st store.Store, log *slog.Logger) (*audit.Logger, error) {
	if af.retention <= 0 {
		return nil, errors.New("--audit-retention: want a duration above zero, e.g. 9600h")
	}
	return audit.New(audit.Config{Store: st, Retention: af.retention, Logger: log.With("component", "audit")})
}
