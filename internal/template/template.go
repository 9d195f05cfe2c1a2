// Package template builds and stores the root filesystems sandboxes start
// from. A template is an immutable directory: it is built under a temporary
// name and renamed into place, never edited afterwards (running sandboxes
// map its files directly). Templates carry envd, so each version lives in
// <dir>/<name>@<envd hash>: a new envd gets a new version on the next use,
// while sandboxes still running on an older one keep it until the last of
// them is gone, when Prune removes it. The shipped templates are `minimal` (busybox and envd, built in
// about a second) and `base` (Debian bookworm with a normal userland, built
// with debootstrap and a package cache that makes rebuilds fast).
//
// Imported by the host agent and by tests that need a rootfs.
package template

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"nestbox.dev/internal/errdefs"
)

// Config configures a Store. Zero values mean the documented defaults.
type Config struct {
	// Dir holds one directory per template; required.
	Dir string
	// CacheDir keeps downloaded packages between builds; "" means
	// Dir/.cache.
	CacheDir string
	// Envd is the static envd binary copied into every template; required
	// to build.
	Envd string
	// Busybox is a static busybox for the minimal template; "" means
	// /bin/busybox.
	Busybox string
	// Mirror is the Debian mirror for debootstrap; "" means the first one
	// in this machine's APT sources.
	Mirror string
	// Progress receives human-readable progress of builds; nil discards.
	Progress io.Writer
	Logger   *slog.Logger
	// InUse lists the rootfs directories (as Ensure returned them) that
	// sandboxes still need though no overlay may be mounted on them, such
	// as paused sandboxes' after a restart. An old version is kept while
	// it is listed here or mounted; an error keeps every version. nil
	// means only mounts count.
	InUse func() ([]string, error)
}

// Info describes a stored template.
type Info struct {
	Name      string    `json:"name"`
	BuiltAt   time.Time `json:"built_at"`
	SizeBytes int64     `json:"size_bytes"`
	EnvdHash  string    `json:"envd_sha256"`
	// EnvdVersion is what the envd put into the template printed for
	// --version, asked of the operator's binary before it was copied in:
	// nothing inside a template is ever run on the host. "" if unknown.
	EnvdVersion string `json:"envd_version,omitempty"`
}

// Store builds templates on first use and hands out their paths.
type Store struct {
	cfg Config
	log *slog.Logger

	// mu guards building, which serialises builds of the same template: a
	// name's channel holds one token while its build lock is held.
	mu       sync.Mutex
	building map[string]chan struct{}

	// hashMu guards the cached hash of cfg.Envd and the versions of
	// envd binaries by hash.
	hashMu    sync.Mutex
	hashOf    envdStamp
	hashSeen  string
	versionOf map[string]string
}

// envdStamp identifies a version of the envd file without reading it.
type envdStamp struct {
	size  int64
	mtime time.Time
}

// builders maps a template name to how it is built into dir.
var builders = map[string]func(ctx context.Context, s *Store, out io.Writer, dir string) error{
	"minimal": buildMinimal,
	"base":    buildBase,
}

// New returns a Store over cfg.Dir.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errdefs.Invalid("template store: dir is required")
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.Dir, ".cache")
	}
	if cfg.Busybox == "" {
		cfg.Busybox = "/bin/busybox"
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("template store: %w", err)
	}
	return &Store{cfg: cfg, log: log, building: map[string]chan struct{}{}, versionOf: map[string]string{}}, nil
}

// Descriptions of the templates this store can build, by name.
var descriptions = map[string]string{
	"minimal": "busybox and envd: the smallest sandbox",
	"base":    "Debian 12 (bookworm) with bash, sudo, curl, git, python3, nodejs and envd",
}

// Names lists the templates this store can build, sorted.
func Names() []string {
	names := make([]string, 0, len(builders))
	for n := range builders {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Describe returns a one-line description of a known template.
func Describe(name string) string { return descriptions[name] }

// Known reports whether name is a template this store can build.
func Known(name string) bool { _, ok := builders[name]; return ok }

// versionLen is how many hex digits of envd's hash name a version.
const versionLen = 12

// dir returns the directory of the current version of template name: the
// one with the configured envd. Without an envd configured it is the
// newest version built.
func (s *Store) dir(name string) (string, error) {
	if s.cfg.Envd == "" {
		return s.newest(name), nil
	}
	hash, err := s.envdHash()
	if err != nil {
		return "", err
	}
	return filepath.Join(s.cfg.Dir, name+"@"+hash[:versionLen]), nil
}

// newest returns the most recently built version of name, or a path that
// does not exist.
func (s *Store) newest(name string) string {
	best, bestAt := filepath.Join(s.cfg.Dir, name+"@none"), time.Time{}
	versions, _ := filepath.Glob(filepath.Join(s.cfg.Dir, name+"@*"))
	for _, v := range versions {
		if info, err := readInfo(v); err == nil && info.BuiltAt.After(bestAt) {
			best, bestAt = v, info.BuiltAt
		}
	}
	return best
}

// envdHash is the sha256 of the configured envd, read again only when the
// file's size or modification time changes.
func (s *Store) envdHash() (string, error) {
	fi, err := os.Stat(s.cfg.Envd)
	if err != nil {
		return "", fmt.Errorf("envd: %w", err)
	}
	stamp := envdStamp{fi.Size(), fi.ModTime()}
	s.hashMu.Lock()
	defer s.hashMu.Unlock()
	if s.hashSeen != "" && s.hashOf == stamp {
		return s.hashSeen, nil
	}
	h, err := fileHash(s.cfg.Envd)
	if err != nil {
		return "", err
	}
	s.hashOf, s.hashSeen = stamp, h
	return h, nil
}

// envdVersion asks the configured envd (the operator's binary, outside any
// template) for its version; "" if it cannot say.
func (s *Store) envdVersion(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.cfg.Envd, "--version").Output()
	if err != nil {
		s.log.Warn("cannot read the version of envd", "envd", s.cfg.Envd, "err", err)
		return ""
	}
	return strings.TrimSpace(string(out))
}

// EnvdVersion returns the version of the envd in the current version of
// template name, from its metadata; "" if it is not built. A template
// built before versions were recorded holds the configured envd when its
// hash says so, and that binary is asked (once per binary).
func (s *Store) EnvdVersion(ctx context.Context, name string) string {
	info, err := s.Get(name)
	if err != nil || info.EnvdVersion != "" || s.cfg.Envd == "" {
		return info.EnvdVersion
	}
	hash, err := s.envdHash()
	if err != nil || hash != info.EnvdHash {
		return ""
	}
	s.hashMu.Lock()
	v, ok := s.versionOf[hash]
	s.hashMu.Unlock()
	if !ok {
		v = s.envdVersion(ctx)
		s.hashMu.Lock()
		s.versionOf[hash] = v
		s.hashMu.Unlock()
	}
	return v
}

// BuildLog is the file that holds the output of the last build of
// template name: debootstrap's, for base.
func (s *Store) BuildLog(name string) string {
	return filepath.Join(s.cfg.Dir, ".logs", name+".log")
}

// Path returns where the current version of template name lives (whether
// or not it is built).
func (s *Store) Path(name string) string {
	d, err := s.dir(name)
	if err != nil {
		return filepath.Join(s.cfg.Dir, name+"@unknown", "rootfs")
	}
	return filepath.Join(d, "rootfs")
}

// Get returns the info of the current version of a built template, or
// ErrNotFound.
func (s *Store) Get(name string) (Info, error) {
	d, err := s.dir(name)
	if err != nil {
		return Info{}, err
	}
	info, err := readInfo(d)
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, errdefs.NotFound("template %q is not built", name)
	}
	return info, err
}

func readInfo(dir string) (Info, error) {
	b, err := os.ReadFile(filepath.Join(dir, "template.json"))
	if err != nil {
		return Info{}, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, fmt.Errorf("template %s: %w", dir, err)
	}
	return info, nil
}

// Ensure returns the rootfs path of template name, building it first if it
// is not built yet. Concurrent callers wait for one build: a sandbox
// create for a template another caller is building waits until it is
// built, or until ctx ends (then it returns ctx's error, never hangs past
// it).
func (s *Store) Ensure(ctx context.Context, name string) (string, error) {
	build, ok := builders[name]
	if !ok {
		return "", errdefs.NotFound("unknown template %q", name)
	}
	s.mu.Lock()
	lock := s.building[name]
	if lock == nil {
		lock = make(chan struct{}, 1)
		s.building[name] = lock
	}
	s.mu.Unlock()
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("wait for the build of template %s: %w", name, ctx.Err())
	}
	defer func() { <-lock }()
	dir, err := s.dir(name)
	if err != nil {
		return "", err
	}
	// Versions made for another envd go once no sandbox uses them.
	defer s.prune(name, dir)
	if _, err := readInfo(dir); err == nil {
		return filepath.Join(dir, "rootfs"), nil
	}
	if err := s.build(ctx, name, dir, build); err != nil {
		return "", fmt.Errorf("build template %s: %w", name, err)
	}
	return filepath.Join(dir, "rootfs"), nil
}

// build makes the template in a temporary directory and renames it into
// place; a failed or interrupted build leaves only the temporary directory,
// which the next build removes.
func (s *Store) build(ctx context.Context, name, final string, build func(context.Context, *Store, io.Writer, string) error) error {
	if s.cfg.Envd == "" {
		return errdefs.Invalid("no envd binary configured")
	}
	start := time.Now()
	logPath := s.BuildLog(name)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	defer logFile.Close()
	fmt.Fprintf(s.cfg.Progress, "building template %q (output in %s)\n", name, logPath)
	// A build that was killed (agent crash, power loss) leaves its
	// temporary directory; builds of a name are serialised, so any left now
	// is dead.
	stale, _ := filepath.Glob(filepath.Join(s.cfg.Dir, ".build-"+name+"-*"))
	for _, d := range stale {
		os.RemoveAll(d)
	}
	tmp := filepath.Join(s.cfg.Dir, ".build-"+name+"-"+randomSuffix())
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // after a successful rename there is nothing left here
	if err := build(ctx, s, logFile, rootfs); err != nil {
		return err
	}
	hash, err := installEnvd(s.cfg.Envd, rootfs)
	if err != nil {
		return err
	}
	size, err := duBytes(rootfs)
	if err != nil {
		return err
	}
	info := Info{Name: name, BuiltAt: time.Now().UTC(), SizeBytes: size, EnvdHash: hash, EnvdVersion: s.envdVersion(ctx)}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "template.json"), b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("install template: %w", err)
	}
	fmt.Fprintf(s.cfg.Progress, "template %q ready in %s (%d MiB)\n", name, time.Since(start).Round(100*time.Millisecond), size>>20)
	s.log.Info("template built", "name", name, "took", time.Since(start), "bytes", size)
	return nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// duBytes sums the apparent sizes of the regular files under dir.
func duBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
