package filesystem

import (
	"bytes"
	"errors"
	"strings"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"nestbox.dev/internal/errdefs"
)

// File metadata lives in extended attributes named user.e2b.<key>, as in
// E2B's envd, so processes in the sandbox can read and set it too
// (getfattr, setfattr).
const (
	metadataPrefix = "user.e2b."
	// MaxMetadataKeyBytes keeps user.e2b.<key> within Linux's 255-byte
	// xattr name limit.
	MaxMetadataKeyBytes = 255 - len(metadataPrefix)
	// MaxMetadataBytes caps the sum of the keys' and values' lengths of one
	// file's metadata.
	MaxMetadataBytes = 4096
)

// ValidateMetadata checks md against the limits that SetMetadata enforces:
// keys are non-empty, visible ASCII (0x21-0x7e) and at most
// MaxMetadataKeyBytes long, values are UTF-8, and keys plus values total at
// most MaxMetadataBytes. Errors are errdefs.ErrInvalid. Case is not checked:
// SetMetadata lower-cases keys.
func ValidateMetadata(md map[string]string) error {
	total := 0
	for k, v := range md {
		if k == "" {
			return errdefs.Invalid("metadata key is empty")
		}
		if len(k) > MaxMetadataKeyBytes {
			return errdefs.Invalid("metadata key %.32q... is longer than %d bytes", k, MaxMetadataKeyBytes)
		}
		for i := 0; i < len(k); i++ {
			if k[i] < 0x21 || k[i] > 0x7e {
				return errdefs.Invalid("metadata key %q: only printable ASCII without spaces is allowed", k)
			}
		}
		if !utf8.ValidString(v) {
			return errdefs.Invalid("metadata value of %q is not valid UTF-8", k)
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataBytes {
		return errdefs.Invalid("metadata is %d bytes, more than %d", total, MaxMetadataBytes)
	}
	return nil
}

// SetMetadata replaces the metadata of the entry at path with md: keys are
// lower-cased, and user.e2b.* attributes whose key is not in md are removed,
// so an empty md clears it. A symlink itself is changed, not its target
// (Linux refuses user attributes on symlinks: ErrPermission).
//
// Invalid metadata is errdefs.ErrInvalid. A filesystem without extended
// attributes gives ErrInvalid "metadata not supported on this filesystem",
// which also matches syscall.ENOTSUP, so callers may choose to carry on.
func SetMetadata(path string, md map[string]string) error {
	lower := make(map[string]string, len(md))
	for k, v := range md {
		lk := strings.ToLower(k)
		if _, dup := lower[lk]; dup {
			return errdefs.Invalid("metadata key %q is given twice (keys are case-insensitive)", lk)
		}
		lower[lk] = v
	}
	if err := ValidateMetadata(lower); err != nil {
		return err
	}
	names, err := listXattrs(path)
	if err != nil {
		if errors.Is(err, syscall.ENOTSUP) {
			if len(lower) == 0 {
				return nil
			}
			return notSupported(err)
		}
		return OSError("list metadata of", path, err)
	}
	for _, name := range names {
		key, ok := strings.CutPrefix(name, metadataPrefix)
		if !ok {
			continue
		}
		if _, keep := lower[key]; keep {
			continue
		}
		if err := unix.Lremovexattr(path, name); err != nil && !errors.Is(err, unix.ENODATA) {
			return OSError("remove metadata of", path, err)
		}
	}
	for k, v := range lower {
		if err := unix.Lsetxattr(path, metadataPrefix+k, []byte(v), 0); err != nil {
			if errors.Is(err, syscall.ENOTSUP) {
				return notSupported(err)
			}
			return OSError("set metadata of", path, err)
		}
	}
	return nil
}

func notSupported(cause error) error {
	return &kindError{kind: errdefs.ErrInvalid, msg: "metadata not supported on this filesystem", cause: cause}
}

// Metadata returns the user.e2b.* attributes of the entry at path (a symlink
// itself, not its target) with the prefix stripped; nil when there are none
// or the filesystem has no extended attributes. Values that are not UTF-8
// have the bad bytes replaced by U+FFFD.
func Metadata(path string) (map[string]string, error) {
	names, err := listXattrs(path)
	if err != nil {
		if errors.Is(err, syscall.ENOTSUP) {
			return nil, nil
		}
		return nil, OSError("list metadata of", path, err)
	}
	var md map[string]string
	for _, name := range names {
		key, ok := strings.CutPrefix(name, metadataPrefix)
		if !ok || key == "" {
			continue
		}
		v, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, OSError("read metadata of", path, err)
		}
		if md == nil {
			md = map[string]string{}
		}
		md[validUTF8(key)] = validUTF8(string(v))
	}
	return md, nil
}

// listXattrs returns the names of path's extended attributes. The list can
// grow between the size query and the read; ERANGE means try again.
func listXattrs(path string) ([]string, error) {
	for range 8 {
		n, err := unix.Llistxattr(path, nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, b := range bytes.Split(buf[:n], []byte{0}) {
			if len(b) > 0 {
				names = append(names, string(b))
			}
		}
		return names, nil
	}
	return nil, unix.ERANGE
}

func getXattr(path, name string) ([]byte, error) {
	for range 8 {
		n, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		n, err = unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, unix.ERANGE
}
