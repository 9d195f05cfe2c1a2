package postgres

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"nestbox.dev/internal/errdefs"
)

// SQLSTATE codes that kindOf maps, from PostgreSQL's errcodes appendix.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeCheckViolation       = "23514"
	codeNotNullViolation     = "23502"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeLockNotAvailable     = "55P03"
)

// kindOf gives a PostgreSQL error the store's error kind: a duplicate
// primary key or unique value is ErrAlreadyExists, a reference to a missing
// row (a team, a user) is ErrNotFound, a failed CHECK or NOT NULL is
// ErrInvalid, and a serialization failure, deadlock or lock timeout, which
// a retry may not meet again, is ErrUnavailable. Other errors, and nil, are
// returned as they are. The SQLSTATE says which constraint failed without
// reading the message.
func kindOf(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	var kind error
	switch pe.Code {
	case codeUniqueViolation:
		kind = errdefs.ErrAlreadyExists
	case codeForeignKeyViolation:
		kind = errdefs.ErrNotFound
	case codeCheckViolation, codeNotNullViolation:
		kind = errdefs.ErrInvalid
	case codeSerializationFailure, codeDeadlockDetected, codeLockNotAvailable:
		kind = errdefs.ErrUnavailable
	default:
		return err
	}
	return fmt.Errorf("%w: %w", kind, err)
}
