package template

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// passwd and group give every template the accounts E2B's SDK expects:
// root, and `user` (uid 1000) whose home is /home/user.
const (
	passwd = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group  = "root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"
)

// buildMinimal lays down busybox with all its applets, the two accounts and
// the usual directories.
func buildMinimal(ctx context.Context, s *Store, _ io.Writer, root string) error {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var/tmp", "home/user", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Chmod(filepath.Join(root, d), 0o777|os.ModeSticky); err != nil {
			return err
		}
	}
	if err := os.Chown(filepath.Join(root, "home/user"), 1000, 1000); err != nil {
		return err
	}
	if err := copyFile(s.cfg.Busybox, filepath.Join(root, "bin/busybox"), 0o755); err != nil {
		return fmt.Errorf("copy busybox: %w", err)
	}
	out, err := exec.CommandContext(ctx, s.cfg.Busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("list busybox applets: %w", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		link := filepath.Join(root, applet)
		if applet == "bin/busybox" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return err
		}
		if err := os.Symlink("/bin/busybox", link); err != nil && !os.IsExist(err) {
			return err
		}
	}
	for name, data := range map[string]string{
		"etc/passwd":   passwd,
		"etc/group":    group,
		"etc/hostname": "sandbox\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	// busybox has no bash applet, and E2B's SDK runs commands with
	// /bin/bash -l -c: bash is busybox's ash here.
	return os.WriteFile(filepath.Join(root, "bin/bash"), []byte("#!/bin/sh\nexec /bin/sh \"$@\"\n"), 0o755)
}

// installEnvd copies envd to /usr/bin/envd and returns its sha256.
func installEnvd(envd, root string) (string, error) {
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		return "", err
	}
	if err := copyFile(envd, filepath.Join(root, "usr/bin/envd"), 0o755); err != nil {
		return "", fmt.Errorf("install envd: %w", err)
	}
	b, err := os.ReadFile(envd)
	if err != nil {
		return "", err
	}
	if bytes.HasPrefix(b, []byte("#!")) {
		return "", fmt.Errorf("install envd: %s is a script, not the static binary", envd)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
