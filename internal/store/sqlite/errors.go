package sqlite

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"nestbox.dev/internal/errdefs"
)

// kindOf gives a SQLite error the store's error kind: a duplicate primary
// key or unique value is ErrAlreadyExists, a reference to a missing row
// (a team, a user) is ErrNotFound, a failed CHECK is ErrInvalid and a lock
// that could not be had in busy_timeout is ErrUnavailable. Other errors are
// returned as they are. Connections report extended result codes, so the
// constraint that failed is known without reading the message.
func kindOf(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	var kind error
	switch code := se.Code(); {
	case code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, code == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		kind = errdefs.ErrAlreadyExists
	case code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		kind = errdefs.ErrNotFound
	case code == sqlite3.SQLITE_CONSTRAINT_CHECK, code == sqlite3.SQLITE_CONSTRAINT_NOTNULL:
		kind = errdefs.ErrInvalid
	case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED:
		kind = errdefs.ErrUnavailable
	default:
		return err
	}
	return fmt.Errorf("%w: %w", kind, err)
}
