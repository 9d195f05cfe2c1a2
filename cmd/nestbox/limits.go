package main

import (
	"errors"
	"flag"
	"time"

	"nestbox.dev/internal/egress"
	"nestbox.dev/internal/lifecycle"
)

// limitFlags are the operator's limits on tenants' capsules, shared by
// `nestbox server` and `nestbox up`.
type limitFlags struct {
	maxVCPUs, maxMemoryMB, maxDiskMB int
	maxLifetime                      time.Duration
	teamCapsules, teamVCPUs, teamMem int
	teamSnapshots, teamDiskMB        int
	teamPooled                       int
	egressDeny                       *string // nil when the command has no such flag
}

// registerLimitFlags adds the limit flags to fs; withEgress adds
// --egress-deny too (`nestbox up` gets it from the agent's flags).
func registerLimitFlags(fs *flag.FlagSet, withEgress bool) *limitFlags {
	lf := &limitFlags{}
	fs.IntVar(&lf.maxVCPUs, "max-vcpus", 0, "most vCPUs one capsule may ask for (0: 64); a host also refuses more than its cores")
	fs.IntVar(&lf.maxMemoryMB, "max-memory-mb", lifecycle.DefaultMaxMemoryMB, "most memory one capsule may ask for, in MB")
	fs.IntVar(&lf.maxDiskMB, "max-disk-mb", lifecycle.DefaultMaxDiskMB, "most disk one capsule may ask for, in MB")
	fs.DurationVar(&lf.maxLifetime, "max-lifetime", lifecycle.DefaultMaxLifetime, "longest a capsule may live from its creation; extending its timeout cannot pass it")
	fs.IntVar(&lf.teamCapsules, "team-max-capsules", lifecycle.DefaultTeamCapsules, "default limit of a team's live capsules (-1: none; a team's stored limit overrides it)")
	fs.IntVar(&lf.teamVCPUs, "team-max-vcpus", lifecycle.DefaultTeamVCPUs, "default limit of the vCPUs of a team's live capsules (-1: none)")
	fs.IntVar(&lf.teamMem, "team-max-memory-mb", lifecycle.DefaultTeamMemoryMB, "default limit of the memory of a team's live capsules, in MB (-1: none)")
	fs.IntVar(&lf.teamSnapshots, "team-max-snapshots", lifecycle.DefaultTeamSnapshots, "default limit of a team's snapshots (-1: none)")
	fs.IntVar(&lf.teamPooled, "team-max-pooled", lifecycle.DefaultTeamPooled, "how many sandboxes the warm pools of a team's templates (made from snapshots) may keep ready together (-1: no pools)")
	fs.IntVar(&lf.teamDiskMB, "team-max-disk-mb", lifecycle.DefaultTeamDiskMB, "default limit of the disk a team's live capsules and snapshots take together, in MB (-1: none)")
	if withEgress {
		lf.egressDeny = fs.String("egress-deny", env("NESTBOX_EGRESS_DENY", "default"), `destinations no capsule may reach, whatever its allow list: comma-separated IPv4 prefixes, "default" for the built-in list (metadata, private, loopback, ...); give the agents the same list (env NESTBOX_EGRESS_DENY)`)
	}
	return lf
}

// limits turns the flags into lifecycle's Limits.
func (lf *limitFlags) limits() (lifecycle.Limits, error) {
	l := lifecycle.Limits{
		MaxVCPUs:    lf.maxVCPUs,
		MaxMemoryMB: lf.maxMemoryMB,
		MaxDiskMB:   lf.maxDiskMB,
		MaxLifetime: lf.maxLifetime,
	}
	l.TeamQuota.Capsules, l.TeamQuota.VCPUs, l.TeamQuota.MemoryMB = lf.teamCapsules, lf.teamVCPUs, lf.teamMem
	l.TeamQuota.Snapshots, l.TeamQuota.DiskMB = lf.teamSnapshots, lf.teamDiskMB
	l.TeamPooled = lf.teamPooled
	if lf.maxVCPUs < 0 || lf.maxMemoryMB < 1 || lf.maxDiskMB < 1 || lf.maxLifetime < time.Second {
		return l, errors.New("--max-vcpus must be 0 or more, --max-memory-mb and --max-disk-mb positive, --max-lifetime at least 1s")
	}
	for _, v := range []int{lf.teamCapsules, lf.teamVCPUs, lf.teamMem, lf.teamSnapshots, lf.teamDiskMB, lf.teamPooled} {
		if v == 0 || v < -1 {
			return l, errors.New("--team-max-* must be positive, or -1 for no limit")
		}
	}
	if lf.egressDeny != nil {
		deny, err := egress.ParseList(*lf.egressDeny)
		if err != nil {
			return l, err
		}
		l.EgressDeny = deny
	}
	return l, nil
}
