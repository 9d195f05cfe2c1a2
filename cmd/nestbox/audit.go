package main

import (
	"errors"
	"flag"
	"time"

	"nestbox.dev/internal/audit"
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

// check returns the retention, refusing one that would delete every entry
// at once or keep them forever by accident.
func (af *auditFlags) check() (time.Duration, error) {
	if af.retention <= 0 {
		return 0, errors.New("--audit-retention: want a duration above zero, e.g. 9600h")
	}
	return af.retention, nil
}
