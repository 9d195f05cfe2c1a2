package template

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// baseSuite is the Debian release of the base template.
const baseSuite = "bookworm"

// basePackages go into the base template on top of debootstrap's minbase.
var basePackages = []string{
	"bash", "coreutils", "procps", "iproute2", "iputils-ping", "ca-certificates", "curl", "git",
	"python3", "nodejs", "sudo", "less", "xz-utils",
}

// buildBase debootstraps Debian into root with the base packages, then adds
// the `user` account with passwordless sudo. Downloaded packages stay in
// the cache directory, which cuts a rebuild from minutes to well under one.
// The commands' output goes to out, the build log.
func buildBase(ctx context.Context, s *Store, out io.Writer, root string) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("debootstrap is not installed (apt-get install debootstrap): %w", err)
	}
	mirror := s.cfg.Mirror
	if mirror == "" {
		var err error
		if mirror, err = aptMirror(baseSuite); err != nil {
			return err
		}
	}
	cache, err := filepath.Abs(filepath.Join(s.cfg.CacheDir, "debootstrap"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	args := []string{"--variant=minbase", "--include=" + strings.Join(basePackages, ","), "--cache-dir=" + cache, baseSuite, root, mirror}
	fmt.Fprintf(out, "debootstrap %s from %s (cached packages in %s)\n", baseSuite, mirror, cache)
	if err := runLogged(ctx, out, "debootstrap", args...); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	steps := [][]string{
		{"groupadd", "-g", "1000", "user"},
		{"useradd", "-m", "-u", "1000", "-g", "1000", "-s", "/bin/bash", "user"},
	}
	for _, st := range steps {
		if err := runLogged(ctx, out, "chroot", append([]string{root}, st...)...); err != nil {
			return fmt.Errorf("%s: %w", st[0], err)
		}
	}
	files := map[string]string{
		"etc/sudoers.d/user": "user ALL=(ALL:ALL) NOPASSWD: ALL\n",
		"etc/hostname":       "sandbox\n",
	}
	// debootstrap makes /root 0700. gVisor refuses to stat a directory its
	// caller may not read, so `ls -l /` as user printed "/root: Permission
	// denied". user has passwordless sudo: hiding root's home from it
	// protects nothing.
	if err := os.Chmod(filepath.Join(root, "root"), 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o440); err != nil {
			return err
		}
	}
	// Package lists and downloaded archives are not needed at run time.
	for _, g := range []string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"} {
		matches, _ := filepath.Glob(filepath.Join(root, g))
		for _, m := range matches {
			os.Remove(m)
		}
	}
	return nil
}

// runLogged runs a command and copies its output to out; its error ends
// with the last lines of that output.
func runLogged(ctx context.Context, out io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	var tail []string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(out, "  %s\n", line)
			tail = append(tail, line)
			if len(tail) > 10 {
				tail = tail[1:]
			}
		}
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.Join(tail, " | "))
	}
	return nil
}

// aptMirror returns the first mirror in this machine's APT sources that
// serves suite, so templates come from wherever the host's packages do.
func aptMirror(suite string) (string, error) {
	var candidates []string
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			// deb [options] URI suite components...
			for len(f) > 1 && strings.HasPrefix(f[1], "[") {
				f = append(f[:1], f[2:]...)
			}
			if len(f) >= 3 && f[0] == "deb" && f[2] == suite {
				candidates = append(candidates, f[1])
			}
		}
	}
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, stanza := range strings.Split(string(b), "\n\n") {
			var uris, suites []string
			for _, line := range strings.Split(stanza, "\n") {
				k, v, ok := strings.Cut(line, ":")
				if !ok || strings.HasPrefix(strings.TrimSpace(k), "#") {
					continue
				}
				switch strings.TrimSpace(k) {
				case "URIs":
					uris = strings.Fields(v)
				case "Suites":
					suites = strings.Fields(v)
				}
			}
			for _, su := range suites {
				if su == suite && len(uris) > 0 {
					candidates = append(candidates, uris[0])
				}
			}
		}
	}
	if len(candidates) == 0 {
		return "", fmt.Errorf("no APT source serves %s; set the mirror explicitly", suite)
	}
	return candidates[0], nil
}
