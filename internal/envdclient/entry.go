package envdclient

import (
	"strings"

	"nestbox.dev"
	"nestbox.dev/internal/proto/filesystempb"
)

// The file type and special bits of a stat(2) mode (S_IFMT and friends).
const (
	modeSocket  = 0o140000
	modeSymlink = 0o120000
	modeFile    = 0o100000
	modeBlock   = 0o060000
	modeDir     = 0o040000
	modeChar    = 0o020000
	modeFIFO    = 0o010000
	modeSetuid  = 0o4000
	modeSetgid  = 0o2000
	modeSticky  = 0o1000
)

// entryOf converts envd's EntryInfo.
func entryOf(e *filesystempb.EntryInfo) nestbox.Entry {
	out := nestbox.Entry{
		Name:          e.GetName(),
		Path:          e.GetPath(),
		Size:          e.GetSize(),
		Mode:          statMode(e.GetMode(), e.GetPermissions()),
		Permissions:   e.GetPermissions(),
		Owner:         e.GetOwner(),
		Group:         e.GetGroup(),
		SymlinkTarget: e.GetSymlinkTarget(),
	}
	if t := e.GetModifiedTime(); t != nil {
		out.ModifiedAt = t.AsTime()
	}
	switch e.GetType() {
	case filesystempb.FileType_FILE_TYPE_FILE:
		out.Type = nestbox.EntryFile
	case filesystempb.FileType_FILE_TYPE_DIRECTORY:
		out.Type = nestbox.EntryDir
	case filesystempb.FileType_FILE_TYPE_SYMLINK:
		out.Type = nestbox.EntrySymlink
	}
	// Devices, sockets and pipes have no EntryType; Mode tells them.
	return out
}

// statMode rebuilds a stat(2) mode. envd sends the permission bits alone
// (mode & 0777, as E2B's envd does) and the rest only inside permissions,
// Go's fs.FileMode string: type and special letters, then nine rwx
// characters ("drwxr-xr-x", "dtrwxrwxrwx", "urwxr-xr-x", "Dcrw-rw-rw-").
func statMode(perm uint32, permissions string) uint32 {
	mode := perm & 0o777
	letters := ""
	if len(permissions) > 9 {
		letters = permissions[:len(permissions)-9]
	}
	typ := uint32(modeFile)
	switch {
	case strings.ContainsRune(letters, 'd'):
		typ = modeDir
	case strings.ContainsRune(letters, 'L'):
		typ = modeSymlink
	case strings.ContainsRune(letters, 'D') && strings.ContainsRune(letters, 'c'):
		typ = modeChar
	case strings.ContainsRune(letters, 'D'):
		typ = modeBlock
	case strings.ContainsRune(letters, 'p'):
		typ = modeFIFO
	case strings.ContainsRune(letters, 'S'):
		typ = modeSocket
	}
	mode |= typ
	if strings.ContainsRune(letters, 'u') {
		mode |= modeSetuid
	}
	if strings.ContainsRune(letters, 'g') {
		mode |= modeSetgid
	}
	if strings.ContainsRune(letters, 't') {
		mode |= modeSticky
	}
	return mode
}
