package template

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// prune removes the versions of template name other than keep that no
// mounted overlay uses as its lower layer and Config.InUse does not list,
// and the directory of the layout before versions (<dir>/<name>) on the
// same terms. A version in use stays until a later prune finds it unused.
// Callers hold name's build lock.
func (s *Store) prune(name, keep string) {
	candidates, _ := filepath.Glob(filepath.Join(s.cfg.Dir, name+"@*"))
	if fi, err := os.Stat(filepath.Join(s.cfg.Dir, name, "rootfs")); err == nil && fi.IsDir() {
		candidates = append(candidates, filepath.Join(s.cfg.Dir, name))
	}
	if len(candidates) <= 1 {
		return // the common case: only the current version
	}
	inUse, err := overlayLowerDirs("/proc/self/mountinfo")
	if err != nil {
		s.log.Warn("cannot read mounts: keeping old template versions", "err", err)
		return
	}
	if s.cfg.InUse != nil {
		held, err := s.cfg.InUse()
		if err != nil {
			s.log.Warn("cannot tell which templates sandboxes hold: keeping old template versions", "err", err)
			return
		}
		for _, d := range held {
			inUse[filepath.Clean(d)] = true
		}
	}
	for _, d := range candidates {
		if d == keep || inUse[filepath.Join(d, "rootfs")] {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			s.log.Warn("remove old template version", "dir", d, "err", err)
			continue
		}
		s.log.Info("removed an old template version", "dir", d)
	}
}

// overlayLowerDirs returns the lower directories of every overlay mount
// listed in a mountinfo file.
func overlayLowerDirs(mountinfo string) (map[string]bool, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dirs := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ... - <fstype> <source> <super options>
		_, tail, ok := strings.Cut(sc.Text(), " - ")
		fields := strings.Fields(tail)
		if !ok || len(fields) < 3 || fields[0] != "overlay" {
			continue
		}
		for _, opt := range strings.Split(fields[2], ",") {
			if v, ok := strings.CutPrefix(opt, "lowerdir="); ok {
				for _, d := range strings.Split(v, ":") {
					dirs[filepath.Clean(d)] = true
				}
			}
		}
	}
	return dirs, sc.Err()
}

// fileHash is the hex sha256 of a file's contents.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
