package main

import (
	"flag"
	"time"

	"nestbox.dev/internal/audit"
	nbplatform "nestbox.dev/platform"
)

// auditFlags configure the control plane's audit log, shared by `nestbox
// server` and `nestbox up`.
type auditFlags struct {
	retention      time.Duration
	maxTeamEntries int
}

func registerAuditFlags(fs *flag.FlagSet) *auditFlags {
	af := &auditFlags{}
	fs.DurationVar(&af.retention, "audit-retention", audit.DefaultRetention, "how long audit entries are kept, checked at start and every hour (default 9600h, 400 days); 0 or negative keeps them forever")
	fs.IntVar(&af.maxTeamEntries, "audit-max-team-entries", audit.DefaultMaxTeamEntries, "how many audit entries of its own a team keeps; its oldest beyond them are deleted at start and every hour (admin entries follow the retention only); 0 or negative: no cap")
	return af
}

// apply sets the audit fields of cfg. The platform's zero means its
// default, so the flags' "0 or negative: off" becomes the platform's
// negative.
func (af *auditFlags) apply(cfg *nbplatform.Config) {
	cfg.AuditRetention, cfg.AuditMaxTeamEntries = af.retention, af.maxTeamEntries
	if af.retention <= 0 {
		cfg.AuditRetention = -1
	}
	if af.maxTeamEntries <= 0 {
		cfg.AuditMaxTeamEntries = -1
	}
}
