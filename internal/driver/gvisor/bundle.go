package gvisor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"nestbox.dev/internal/capsulespec"
	"nestbox.dev/internal/driver"
)

const cpuPeriod = 100000 // µs

// capabilities of the sandbox's processes. gVisor's sentry is the isolation
// boundary, so envd gets what a root user of an ordinary Linux machine
// needs: switching users, owning files, sudo, binding low ports, ping.
var capabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE",
	"CAP_SETFCAP", "CAP_SYS_PTRACE", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_SYS_NICE",
	"CAP_IPC_LOCK",
}

// memoryLimit is the guest's memory size in bytes: the spec's limit, which
// runsc hands the sentry as the guest's total memory.
func memoryLimit(spec driver.Spec) int64 {
	memMB := spec.MemoryMB
	if memMB <= 0 {
		memMB = capsulespec.DefaultMemoryMB
	}
	return int64(memMB) << 20
}

// RuntimeHeadroom is the memory a sandbox of guest size mem may use on the
// host beyond it, for gVisor itself (addRuntimeHeadroom): a quarter of
// the guest's, at least 64 MiB.
func RuntimeHeadroom(mem int64) int64 { return max(64<<20, mem/4) }

// ociSpec builds the OCI runtime spec of a sandbox.
func (d *Driver) ociSpec(spec driver.Spec) *specs.Spec {
	vcpus := spec.VCPUs
	if vcpus <= 0 {
		vcpus = capsulespec.DefaultVCPUs
	}
	memBytes := memoryLimit(spec)
	quota := int64(vcpus) * cpuPeriod
	period := uint64(cpuPeriod)
	pids := d.cfg.PidsLimit
	env := spec.Env
	if !hasEnv(env, "PATH") {
		env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = "sandbox"
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0},
			Args: spec.Args,
			Env:  env,
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: capabilities, Effective: capabilities, Permitted: capabilities,
				Inheritable: capabilities,
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1 << 20, Soft: 1 << 20}},
		},
		Root:     &specs.Root{Path: spec.Rootfs, Readonly: false},
		Hostname: hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: filepath.Join(spec.Dir, "resolv.conf"), Options: []string{"rbind", "ro"}},
			{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(spec.Dir, "hosts"), Options: []string{"rbind", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: d.cfg.CgroupParent + "/" + spec.ID,
			// runsc update crashes on a spec without resources, and the
			// limits are the point: always set them.
			Resources: &specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: &memBytes},
				CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period},
				Pids:   &specs.LinuxPids{Limit: pids},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace, Path: spec.NetNS},
			},
		},
	}
	return s
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}

// writeBundle writes config.json and the files it bind-mounts. Writes go to
// a temporary file renamed into place, so a crash never leaves half a spec.
func (d *Driver) writeBundle(spec driver.Spec) error {
	dir := bundleDir(spec)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dns := spec.DNS
	if len(dns) == 0 {
		dns = []string{"1.1.1.1", "8.8.8.8"}
	}
	var resolv strings.Builder
	for _, ns := range dns {
		fmt.Fprintf(&resolv, "nameserver %s\n", ns)
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = "sandbox"
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname + "\n"
	b, err := json.MarshalIndent(d.ociSpec(spec), "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		filepath.Join(spec.Dir, "resolv.conf"): []byte(resolv.String()),
		filepath.Join(spec.Dir, "hosts"):       []byte(hosts),
		filepath.Join(dir, "config.json"):      b,
	} {
		if err := writeFileAtomic(name, data); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
