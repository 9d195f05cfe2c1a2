package main

import (
	"errors"
	"flag"
	"time"

	cpusage "nestbox.dev/internal/usage"
)

// usageFlags configure usage accounting, shared by `nestbox server` and
// `nestbox up`.
type usageFlags struct {
	interval      time.Duration
	retentionDays int
}

func registerUsageFlags(fs *flag.FlagSet) *usageFlags {
	uf := &usageFlags{}
	fs.DurationVar(&uf.interval, "usage-interval", cpusage.DefaultInterval, "how often the usage of every running capsule is sampled from the agents")
	fs.IntVar(&uf.retentionDays, "usage-retention-days", cpusage.DefaultRetentionDays, "whole days of usage samples kept before today (the daily rollups are kept for good)")
	return uf
}

// config turns the flags into usage's Config (the control plane fills in
// the rest).
func (uf *usageFlags) config() (cpusage.Config, error) {
	if uf.interval < time.Second || uf.retentionDays < 1 {
		return cpusage.Config{}, errors.New("--usage-interval must be at least 1s, --usage-retention-days at least 1")
	}
	return cpusage.Config{Interval: uf.interval, RetentionDays: uf.retentionDays}, nil
}
