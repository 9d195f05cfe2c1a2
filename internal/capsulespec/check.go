package capsulespec

import (
	"net/netip"
	"regexp"
	"strings"
	"time"

	"nestbox.dev/internal/egress"
	"nestbox.dev/internal/errdefs"
)

// Spec is what a capsule request asks for, in the units of the native
// API, whichever layer it arrives at: the control plane checks a request
// with it before anything is stored, and the host agent checks what the
// control plane sends it (an agent may also be called by other tools with
// its token) with the same function, so the two can never disagree about
// what is valid.
type Spec struct {
	Template       string
	VCPUs          int
	MemoryMB       int
	DiskMB         int // 0: the host's default
	TimeoutSeconds int
	EnvVars        map[string]string
	Metadata       map[string]string
	AllowOut       []string
	DenyOut        []string
	// Workdir is the default working directory of commands; "" means the
	// template's.
	Workdir string
}

// Limits are the operator's bounds a Spec is checked against. A zero
// field means the bound of this package (MaxVCPUs) or none.
type Limits struct {
	MaxVCPUs    int
	MaxMemoryMB int
	MaxDiskMB   int
	MaxLifetime time.Duration
	// EgressDeny is the operator's deny list, which an allow_out entry
	// may not overlap (the host would drop it anyway: refusing it tells
	// the tenant so); nil checks nothing.
	EgressDeny []netip.Prefix
}

// Limits of a request that no configuration changes.
const (
	MaxMapEntries   = 100
	MaxKeyLen       = 256
	MaxValueLen     = 8 << 10
	MaxPrefixes     = 256
	MaxTemplateName = 64
)

var (
	validTemplate = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	validEnvName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidTemplateName reports whether name has the form of a template name.
func ValidTemplateName(name string) bool {
	return len(name) <= MaxTemplateName && validTemplate.MatchString(name)
}

// Check reports the first thing wrong with s under lim as an
// errdefs.ErrInvalid that names the API field, or nil. The unset fields
// must have been filled with their defaults before: a zero VCPUs,
// MemoryMB, TimeoutSeconds or Template is an error here.
func Check(s Spec, lim Limits) error {
	if !ValidTemplateName(s.Template) {
		return errdefs.Invalid("template %q: want up to %d lower-case letters, digits, '.', '_' or '-'", s.Template, MaxTemplateName)
	}
	maxVCPUs := lim.MaxVCPUs
	if maxVCPUs <= 0 || maxVCPUs > MaxVCPUs {
		maxVCPUs = MaxVCPUs
	}
	if s.VCPUs < 1 || s.VCPUs > maxVCPUs {
		return errdefs.Invalid("vcpus %d: want 1 to %d", s.VCPUs, maxVCPUs)
	}
	if s.MemoryMB < MinMemoryMB || (lim.MaxMemoryMB > 0 && s.MemoryMB > lim.MaxMemoryMB) {
		if lim.MaxMemoryMB > 0 {
			return errdefs.Invalid("memory_mb %d: want %d to %d", s.MemoryMB, MinMemoryMB, lim.MaxMemoryMB)
		}
		return errdefs.Invalid("memory_mb %d: want at least %d", s.MemoryMB, MinMemoryMB)
	}
	if s.DiskMB < 0 || (lim.MaxDiskMB > 0 && s.DiskMB > lim.MaxDiskMB) {
		if lim.MaxDiskMB > 0 {
			return errdefs.Invalid("disk_mb %d: want 0 (the host's default) to %d", s.DiskMB, lim.MaxDiskMB)
		}
		return errdefs.Invalid("disk_mb %d: must not be negative", s.DiskMB)
	}
	if s.TimeoutSeconds < 1 || (lim.MaxLifetime > 0 && time.Duration(s.TimeoutSeconds)*time.Second > lim.MaxLifetime) {
		if lim.MaxLifetime > 0 {
			return errdefs.Invalid("timeout_seconds %d: want 1 to %d (the longest a capsule may live)", s.TimeoutSeconds, int(lim.MaxLifetime/time.Second))
		}
		return errdefs.Invalid("timeout_seconds %d: want at least 1", s.TimeoutSeconds)
	}
	if err := checkMap("env_vars", s.EnvVars, validEnvName); err != nil {
		return err
	}
	if err := checkMap("metadata", s.Metadata, nil); err != nil {
		return err
	}
	allow, err := ParsePrefixes("allow_out", s.AllowOut)
	if err != nil {
		return err
	}
	if err := egress.Check(allow, lim.EgressDeny); err != nil {
		return err
	}
	if _, err := ParsePrefixes("deny_out", s.DenyOut); err != nil {
		return err
	}
	if s.Workdir != "" && (!strings.HasPrefix(s.Workdir, "/") || strings.ContainsRune(s.Workdir, 0)) {
		return errdefs.Invalid("workdir %q: must be an absolute path", s.Workdir)
	}
	return nil
}

// ParsePrefixes parses an egress list of the field named field: IPv4
// prefixes or addresses (a /32), at most MaxPrefixes of them.
func ParsePrefixes(field string, list []string) ([]netip.Prefix, error) {
	if len(list) > MaxPrefixes {
		return nil, errdefs.Invalid("%s: at most %d entries", field, MaxPrefixes)
	}
	var out []netip.Prefix
	for _, v := range list {
		p, err := egress.ParsePrefix(v)
		if err != nil {
			return nil, errdefs.Invalid("%s: %v", field, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func checkMap(field string, m map[string]string, validKey *regexp.Regexp) error {
	if len(m) > MaxMapEntries {
		return errdefs.Invalid("%s: at most %d entries", field, MaxMapEntries)
	}
	for k, v := range m {
		if k == "" || len(k) > MaxKeyLen {
			return errdefs.Invalid("%s: keys must have 1 to %d characters", field, MaxKeyLen)
		}
		if validKey != nil && !validKey.MatchString(k) {
			return errdefs.Invalid("%s: %q is not a valid name", field, k)
		}
		if len(v) > MaxValueLen {
			return errdefs.Invalid("%s: the value of %q is longer than %d bytes", field, k, MaxValueLen)
		}
		if strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return errdefs.Invalid("%s: %q contains a NUL byte", field, k)
		}
	}
	return nil
}
