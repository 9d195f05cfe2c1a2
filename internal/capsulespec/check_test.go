package capsulespec

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"nestbox.dev/internal/errdefs"
)

func TestCheck(t *testing.T) {
	good := Spec{Template: "base", VCPUs: 1, MemoryMB: 512, TimeoutSeconds: 300}
	lim := Limits{MaxVCPUs: 2, MaxMemoryMB: 1024, MaxDiskMB: 2048, MaxLifetime: time.Hour}
	if err := Check(good, lim); err != nil {
		t.Fatalf("Check(%+v) = %v, want nil", good, err)
	}
	many := map[string]string{}
	for i := range MaxMapEntries + 1 {
		many["K"+strings.Repeat("x", i)] = ""
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Spec)
		lim   Limits
		field string // the API field the error must name
	}{
		{"empty template", func(s *Spec) { s.Template = "" }, lim, "template"},
		{"upper-case template", func(s *Spec) { s.Template = "Base" }, lim, "template"},
		{"long template", func(s *Spec) { s.Template = strings.Repeat("a", MaxTemplateName+1) }, lim, "template"},
		{"no vcpus", func(s *Spec) { s.VCPUs = 0 }, lim, "vcpus"},
		{"vcpus over the operator's max", func(s *Spec) { s.VCPUs = 3 }, lim, "vcpus"},
		{"vcpus over the absolute max", func(s *Spec) { s.VCPUs = MaxVCPUs + 1 }, Limits{MaxVCPUs: 1000}, "vcpus"},
		{"tiny memory", func(s *Spec) { s.MemoryMB = MinMemoryMB - 1 }, lim, "memory_mb"},
		{"memory over the max", func(s *Spec) { s.MemoryMB = 1025 }, lim, "memory_mb"},
		{"negative disk", func(s *Spec) { s.DiskMB = -1 }, Limits{}, "disk_mb"},
		{"disk over the max", func(s *Spec) { s.DiskMB = 4096 }, lim, "disk_mb"},
		{"no timeout", func(s *Spec) { s.TimeoutSeconds = 0 }, lim, "timeout_seconds"},
		{"timeout past the lifetime", func(s *Spec) { s.TimeoutSeconds = 3601 }, lim, "timeout_seconds"},
		{"env name with =", func(s *Spec) { s.EnvVars = map[string]string{"A=B": "x"} }, lim, "env_vars"},
		{"env name with a digit first", func(s *Spec) { s.EnvVars = map[string]string{"1A": "x"} }, lim, "env_vars"},
		{"env value with NUL", func(s *Spec) { s.EnvVars = map[string]string{"A": "x\x00"} }, lim, "env_vars"},
		{"too many metadata", func(s *Spec) { s.Metadata = many }, lim, "metadata"},
		{"long metadata value", func(s *Spec) { s.Metadata = map[string]string{"k": strings.Repeat("v", MaxValueLen+1)} }, lim, "metadata"},
		{"ipv6 allow", func(s *Spec) { s.AllowOut = []string{"::1"} }, lim, "allow_out"},
		{"bad deny", func(s *Spec) { s.DenyOut = []string{"10.0.0.0/33"} }, lim, "deny_out"},
		{"relative workdir", func(s *Spec) { s.Workdir = "tmp" }, lim, "workdir"},
		{"allow into the deny list", func(s *Spec) { s.AllowOut = []string{"169.254.169.254"} }, Limits{EgressDeny: []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}}, "allow_out"},
	} {
		s := good
		tc.edit(&s)
		err := Check(s, tc.lim)
		if !errors.Is(err, errdefs.ErrInvalid) || !strings.HasPrefix(err.Error(), tc.field) {
			t.Errorf("%s: Check = %v, want an invalid-argument error naming %q", tc.name, err, tc.field)
		}
	}
	// Zero limits mean this package's bounds only.
	big := good
	big.MemoryMB, big.DiskMB, big.TimeoutSeconds, big.VCPUs = 1<<20, 1<<20, 1<<30, MaxVCPUs
	if err := Check(big, Limits{}); err != nil {
		t.Errorf("Check(%+v, no limits) = %v, want nil", big, err)
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes("allow_out", []string{"1.1.1.1", "10.0.0.0/8", "192.168.1.7/24"})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	if want := []string{"1.1.1.1/32", "10.0.0.0/8", "192.168.1.0/24"}; !slices.Equal(s, want) {
		t.Errorf("got %v, want %v", s, want)
	}
	for _, bad := range []string{"", "::/0", "1.2.3", "10.0.0.0/33"} {
		if _, err := ParsePrefixes("allow_out", []string{bad}); err == nil {
			t.Errorf("ParsePrefixes(%q) accepted", bad)
		}
	}
	if _, err := ParsePrefixes("deny_out", make([]string, MaxPrefixes+1)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("ParsePrefixes of %d entries = %v, want the count refused", MaxPrefixes+1, err)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("base", 1, 512, 0, 300, "A", "v", "10.0.0.0/8", "/home/user")
	f.Fuzz(func(t *testing.T, tpl string, vcpus, mem, disk, timeout int, k, v, prefix, wd string) {
		s := Spec{Template: tpl, VCPUs: vcpus, MemoryMB: mem, DiskMB: disk, TimeoutSeconds: timeout,
			EnvVars: map[string]string{k: v}, Metadata: map[string]string{k: v}, AllowOut: []string{prefix}, Workdir: wd}
		if err := Check(s, Limits{MaxVCPUs: 4, MaxMemoryMB: 4096, MaxDiskMB: 8192, MaxLifetime: time.Hour}); err != nil && !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("Check(%+v) = %v, not an invalid-argument error", s, err)
		}
	})
}
