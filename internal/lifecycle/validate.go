package lifecycle

import (
	"net/netip"
	"regexp"
	"strings"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/errdefs"
)

// Limits of a create request.
const (
	maxVCPUs        = 64
	minMemoryMB     = 64
	maxMemoryMB     = 256 << 10
	maxDiskMB       = 1 << 20
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
	case req.VCPUs < 0 || req.VCPUs > maxVCPUs:
		return req, errdefs.Invalid("vcpus %d: want 1 to %d", req.VCPUs, maxVCPUs)
	}
	switch {
	case req.MemoryMB == 0:
		req.MemoryMB = DefaultMemoryMB
	case req.MemoryMB < minMemoryMB || req.MemoryMB > maxMemoryMB:
		return req, errdefs.Invalid("memory_mb %d: want %d to %d", req.MemoryMB, minMemoryMB, maxMemoryMB)
	}
	if req.DiskMB < 0 || req.DiskMB > maxDiskMB {
		return req, errdefs.Invalid("disk_mb %d: want 0 (the host's default) to %d", req.DiskMB, maxDiskMB)
	}
	switch {
	case req.TimeoutSeconds == 0:
		req.TimeoutSeconds = int(DefaultTimeout / time.Second)
	case req.TimeoutSeconds < 0 || time.Duration(req.TimeoutSeconds)*time.Second > MaxTimeout:
		return req, errdefs.Invalid("timeout_seconds %d: want 1 to %d", req.TimeoutSeconds, int(MaxTimeout/time.Second))
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
	for _, list := range []struct {
		name string
		v    []string
	}{{"allow_out", req.AllowOut}, {"deny_out", req.DenyOut}} {
		if len(list.v) > maxPrefixes {
			return req, errdefs.Invalid("%s: at most %d entries", list.name, maxPrefixes)
		}
		for _, p := range list.v {
			if err := checkPrefix(p); err != nil {
				return req, errdefs.Invalid("%s: %v", list.name, err)
			}
		}
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

// checkPrefix accepts an IPv4 address or prefix, as the agent does.
func checkPrefix(s string) error {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return errdefs.Invalid("%q is not an IPv4 prefix", s)
		}
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return errdefs.Invalid("%q is not an IPv4 address", s)
	}
	return nil
}
