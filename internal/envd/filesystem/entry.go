package filesystem

import (
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/protobuf/types/known/timestamppb"

	"nestbox.dev/internal/proto/filesystempb"
)

// Entry describes the entry at path, which must be absolute and clean. It
// does not follow a final symlink (Lstat): a symlink is FILE_TYPE_SYMLINK
// with symlink_target set to the absolute path it resolves to. A missing
// path is errdefs.ErrNotFound.
//
// Mode holds the permission bits only (mode & 0o777, as E2B's envd sends);
// for a symlink they are those of its target when it resolves. Permissions
// is Go's fs.FileMode string ("-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx").
// Owner and group are names, or the numeric id when the id has no name.
// Metadata holds the user.e2b.* extended attributes; it is nil when there
// are none or they cannot be read.
//
// Strings that are not valid UTF-8 (names are bytes on Linux) have the bad
// bytes replaced by U+FFFD: protobuf refuses to encode them otherwise, and
// one odd name would fail a whole listing.
func Entry(path string) (*filesystempb.EntryInfo, error) {
	return newNamer().entry(path)
}

// namer turns uids and gids into names, caching them for one request:
// os/user reads /etc/passwd or /etc/group on every lookup.
type namer struct {
	users  map[uint32]string
	groups map[uint32]string
}

func newNamer() *namer {
	return &namer{users: map[uint32]string{}, groups: map[uint32]string{}}
}

func (n *namer) entry(path string) (*filesystempb.EntryInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, OSError("stat", path, err)
	}
	return n.fromInfo(path, fi), nil
}

func (n *namer) fromInfo(path string, fi fs.FileInfo) *filesystempb.EntryInfo {
	mode := fi.Mode()
	e := &filesystempb.EntryInfo{
		Name:         validUTF8(filepath.Base(path)),
		Type:         fileType(mode),
		Path:         validUTF8(path),
		Size:         fi.Size(),
		Mode:         uint32(mode.Perm()),
		Permissions:  mode.String(),
		ModifiedTime: timestamppb.New(fi.ModTime()),
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.Owner = n.user(st.Uid)
		e.Group = n.group(st.Gid)
	}
	if mode&fs.ModeSymlink != 0 {
		target := validUTF8(symlinkTarget(path))
		e.SymlinkTarget = &target
		if ti, err := os.Stat(path); err == nil {
			e.Mode = uint32(ti.Mode().Perm())
		}
	}
	// An entry without metadata beats no entry: a read error (EACCES on
	// a file envd cannot read when it is not root) leaves it empty.
	if md, err := Metadata(path); err == nil && len(md) > 0 {
		e.Metadata = md
	}
	return e
}

func fileType(mode fs.FileMode) filesystempb.FileType {
	switch {
	case mode.IsRegular():
		return filesystempb.FileType_FILE_TYPE_FILE
	case mode.IsDir():
		return filesystempb.FileType_FILE_TYPE_DIRECTORY
	case mode&fs.ModeSymlink != 0:
		return filesystempb.FileType_FILE_TYPE_SYMLINK
	}
	// Devices, sockets and pipes: E2B's envd sends unspecified too, and
	// its SDK leaves such entries out of listings.
	return filesystempb.FileType_FILE_TYPE_UNSPECIFIED
}

// symlinkTarget returns the absolute path the symlink at path resolves to,
// or, when it does not resolve (dangling, loop), its own target made
// absolute.
func symlinkTarget(path string) string {
	if t, err := filepath.EvalSymlinks(path); err == nil {
		if abs, err := filepath.Abs(t); err == nil {
			return abs
		}
		return t
	}
	t, err := os.Readlink(path)
	if err != nil {
		return path
	}
	if !filepath.IsAbs(t) {
		t = filepath.Join(filepath.Dir(path), t)
	}
	return filepath.Clean(t)
}

func (n *namer) user(uid uint32) string {
	if name, ok := n.users[uid]; ok {
		return name
	}
	name := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	n.users[uid] = name
	return name
}

func (n *namer) group(gid uint32) string {
	if name, ok := n.groups[gid]; ok {
		return name
	}
	name := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(name); err == nil {
		name = g.Name
	}
	n.groups[gid] = name
	return name
}

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
