package main

import (
	"flag"
	"testing"
	"time"

	nbplatform "nestbox.dev/platform"
)

// TestAuditFlags: the flags' defaults reach the platform as they are, and
// 0 or a negative value turns the retention or the cap off (the platform's
// negative; its zero would mean the default instead).
func TestAuditFlags(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		retention time.Duration
		max       int
	}{
		{nil, 400 * 24 * time.Hour, 200_000},
		{[]string{"--audit-retention", "720h", "--audit-max-team-entries", "5000"}, 720 * time.Hour, 5000},
		{[]string{"--audit-retention", "0", "--audit-max-team-entries", "0"}, -1, -1},
		{[]string{"--audit-retention", "-1h", "--audit-max-team-entries", "-3"}, -1, -1},
	} {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		af := registerAuditFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var cfg nbplatform.Config
		af.apply(&cfg)
		if cfg.AuditRetention != tc.retention || cfg.AuditMaxTeamEntries != tc.max {
			t.Errorf("%q: retention %s, max %d; want %s, %d", tc.args, cfg.AuditRetention, cfg.AuditMaxTeamEntries, tc.retention, tc.max)
		}
	}
}
