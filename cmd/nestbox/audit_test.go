package main

import (
	"testing"
	"time"
)

func TestAuditRetentionFlag(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Hour} {
		if _, err := (&auditFlags{retention: d}).check(); err == nil {
			t.Errorf("--audit-retention %s: no error", d)
		}
	}
}
