// Package identity resolves the sandbox user a request acts as: the name from
// HTTP Basic auth or a username parameter, looked up in the sandbox's
// /etc/passwd, with the credentials, home and login environment that
// processes and files of that user get. Imported by envd's services.
package identity

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"nestbox.dev/internal/errdefs"
)

// DefaultPath is the PATH of processes whose user has no login profile.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// User is a resolved account of the sandbox.
type User struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []uint32
	Home   string
	Shell  string
}

// Lookup resolves name. An unknown user is ErrUnauthenticated: that is what
// E2B's envd answers, and what its SDK expects.
func Lookup(name string) (User, error) {
	if name == "" {
		return User{}, errdefs.Invalid("empty user name")
	}
	u, err := user.Lookup(name)
	if err != nil {
		return User{}, errdefs.Unauthenticated("invalid username: %q", name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return User{}, fmt.Errorf("user %q has a non-numeric uid or gid", name)
	}
	out := User{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir, Shell: "/bin/sh"}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != out.GID {
				out.Groups = append(out.Groups, uint32(n))
			}
		}
	}
	if sh := shellOf(name); sh != "" {
		out.Shell = sh
	}
	if out.Home == "" {
		out.Home = "/"
	}
	return out, nil
}

// shellOf reads the login shell from /etc/passwd (os/user does not expose it).
func shellOf(name string) string {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 7 && f[0] == name {
			return f[6]
		}
	}
	return ""
}

// FromBasicAuth returns the user name of an "Authorization: Basic" header
// value (E2B's SDK sends base64("user:")). ok is false when the header is not
// Basic auth at all; a Basic header that does not decode is ErrInvalid.
func FromBasicAuth(header string) (name string, ok bool, err error) {
	const prefix = "Basic "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return "", false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header[len(prefix):]))
	if err != nil {
		return "", true, errdefs.Invalid("authorization header: invalid base64")
	}
	name, _, _ = strings.Cut(string(raw), ":")
	if name == "" {
		return "", true, errdefs.Invalid("authorization header: empty user name")
	}
	return name, true, nil
}

// Credential returns the credential to run a process as u, or nil when envd
// cannot switch users (it does not run as root) and should run it as itself.
func (u User) Credential() *syscall.Credential {
	if os.Geteuid() != 0 {
		return nil
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
}

// Env returns the login environment of u: HOME, USER, LOGNAME, SHELL, PATH.
func (u User) Env() map[string]string {
	return map[string]string{
		"HOME":    u.Home,
		"USER":    u.Name,
		"LOGNAME": u.Name,
		"SHELL":   u.Shell,
		"PATH":    DefaultPath,
	}
}

// Chown gives path to u. It does nothing when envd is not root.
func (u User) Chown(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return os.Lchown(path, int(u.UID), int(u.GID))
}

// Resolve makes path absolute for u: relative paths are taken from the
// user's home, "~" and "~/x" are expanded, and the result is cleaned.
func (u User) Resolve(path string) (string, error) {
	if path == "" {
		return "", errdefs.Invalid("empty path")
	}
	if strings.ContainsRune(path, 0) {
		return "", errdefs.Invalid("path contains a NUL byte")
	}
	switch {
	case path == "~":
		path = u.Home
	case strings.HasPrefix(path, "~/"):
		path = filepath.Join(u.Home, path[2:])
	case !filepath.IsAbs(path):
		path = filepath.Join(u.Home, path)
	}
	return filepath.Clean(path), nil
}

// MkdirAll creates dir and its missing parents, giving each directory it
// creates to u.
func (u User) MkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !os.IsExist(err) {
			return err
		}
		if err := u.Chown(missing[i]); err != nil {
			return err
		}
	}
	return nil
}

// FromHeader resolves the user of an RPC: the Basic auth user when the
// Authorization header has one, else defaultUser.
func FromHeader(h http.Header, defaultUser string) (User, error) {
	name, ok, err := FromBasicAuth(h.Get("Authorization"))
	if err != nil {
		return User{}, err
	}
	if !ok {
		name = defaultUser
	}
	return Lookup(name)
}
