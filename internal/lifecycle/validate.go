package lifecycle

import (
	"net/netip"
	"regexp"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/egress"
	"nestbox.dev/internal/errdefs"
)

// Limits of a create request that no configuration changes; the maxima of
// vCPUs, memory, disk and lifetime are in Config.
const (
	minMemoryMB     = capsulespec.MinMemoryMB
	maxMapEntries   = 100
	maxKeyLen       = 256
	maxValueLen     = 8 << 10
	maxPrefixes     = 256
	maxTemplateName = 64
)

var (
	validTemplate = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	validEnvName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// normalize checks a create request and fills in the defaults.
func (s *Service) normalize(req nestbox.CreateCapsuleRequest) (nestbox.CreateCapsuleRequest, error) {
	if req.Template == "" {
		req.Template = s.cfg.DefaultTemplate
	}
	if len(req.Template) > maxTemplateName || !validTemplate.MatchString(req.Template) {
		return req, errdefs.Invalid("template %q: want lower-case letters, digits, '.', '_' or '-'", req.Template)
	}
	switch {
	case req.VCPUs == 0:
		req.VCPUs = DefaultVCPUs
	case req.VCPUs < 0 || req.VCPUs > s.cfg.MaxVCPUs:
		return req, errdefs.Invalid("vcpus %d: want 1 to %d", req.VCPUs, s.cfg.MaxVCPUs)
	}
	switch {
	case req.MemoryMB == 0:
		req.MemoryMB = DefaultMemoryMB
	case req.MemoryMB < minMemoryMB || req.MemoryMB > s.cfg.MaxMemoryMB:
		return req, errdefs.Invalid("memory_mb %d: want %d to %d", req.MemoryMB, minMemoryMB, s.cfg.MaxMemoryMB)
	}
	if req.DiskMB < 0 || req.DiskMB > s.cfg.MaxDiskMB {
		return req, errdefs.Invalid("disk_mb %d: want 0 (the host's default) to %d", req.DiskMB, s.cfg.MaxDiskMB)
	}
	switch {
	case req.TimeoutSeconds == 0:
		req.TimeoutSeconds = int(min(DefaultTimeout, s.cfg.MaxLifetime) / time.Second)
	case req.TimeoutSeconds < 0 || time.Duration(req.TimeoutSeconds)*time.Second > s.cfg.MaxLifetime:
		return req, errdefs.Invalid("timeout_seconds %d: want 1 to %d (the longest a capsule may live)", req.TimeoutSeconds, int(s.cfg.MaxLifetime/time.Second))
	}
	if err := checkMap("env_vars", req.EnvVars, validEnvName); err != nil {
		return req, err
	}
	if err := checkMap("metadata", req.Metadata, nil); err != nil {
		return req, err
	}
	if req.Internet == nil {
		yes := true
		req.Internet = &yes
	}
	var allow []netip.Prefix
	for _, list := range []struct {
		name string
		v    []string
	}{{"allow_out", req.AllowOut}, {"deny_out", req.DenyOut}} {
		if len(list.v) > maxPrefixes {
			return req, errdefs.Invalid("%s: at most %d entries", list.name, maxPrefixes)
		}
		for _, v := range list.v {
			p, err := egress.ParsePrefix(v)
			if err != nil {
				return req, errdefs.Invalid("%s: %v", list.name, err)
			}
			if list.name == "allow_out" {
				allow = append(allow, p)
			}
		}
	}
	// An allow entry the operator denies would be dropped by the host
	// anyway; refusing it tells the tenant so.
	if err := egress.Check(allow, s.cfg.EgressDeny); err != nil {
		return req, err
	}
	return req, nil
}

func checkMap(field string, m map[string]string, validKey *regexp.Regexp) error {
	if len(m) > maxMapEntries {
		return errdefs.Invalid("%s: at most %d entries", field, maxMapEntries)
	}
	for k, v := range m {
		if k == "" || len(k) > maxKeyLen {
			return errdefs.Invalid("%s: keys must have 1 to %d characters", field, maxKeyLen)
		}
		if validKey != nil && !validKey.MatchString(k) {
			return errdefs.Invalid("%s: %q is not a valid name", field, k)
		}
		if len(v) > maxValueLen {
			return errdefs.Invalid("%s: the value of %q is longer than %d bytes", field, k, maxValueLen)
		}
		if strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return errdefs.Invalid("%s: %q contains a NUL byte", field, k)
		}
	}
	return nil
}
