package lifecycle

import (
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
)

// normalize fills in the defaults of a create request and checks it with
// capsulespec.Check, the one validation the host agent runs too (here
// with the operator's limits and egress deny list).
func (s *Service) normalize(req nestbox.CreateCapsuleRequest) (nestbox.CreateCapsuleRequest, error) {
	if req.Template == "" {
		req.Template = s.cfg.DefaultTemplate
	}
	if req.VCPUs == 0 {
		req.VCPUs = DefaultVCPUs
	}
	if req.MemoryMB == 0 {
		req.MemoryMB = DefaultMemoryMB
	}
	if req.TimeoutSeconds == 0 {
		req.TimeoutSeconds = int(min(DefaultTimeout, s.cfg.MaxLifetime) / time.Second)
	}
	err := capsulespec.Check(capsulespec.Spec{
		Template:       req.Template,
		VCPUs:          req.VCPUs,
		MemoryMB:       req.MemoryMB,
		DiskMB:         req.DiskMB,
		TimeoutSeconds: req.TimeoutSeconds,
		EnvVars:        req.EnvVars,
		Metadata:       req.Metadata,
		AllowOut:       req.AllowOut,
		DenyOut:        req.DenyOut,
	}, capsulespec.Limits{
		MaxVCPUs:    s.cfg.MaxVCPUs,
		MaxMemoryMB: s.cfg.MaxMemoryMB,
		MaxDiskMB:   s.cfg.MaxDiskMB,
		MaxLifetime: s.cfg.MaxLifetime,
		EgressDeny:  s.cfg.EgressDeny,
	})
	if err != nil {
		return req, err
	}
	if req.Internet == nil {
		yes := true
		req.Internet = &yes
	}
	return req, nil
}
