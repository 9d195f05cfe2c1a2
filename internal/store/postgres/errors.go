package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

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
	// The server is going away or not there yet: class 08 (connection
	// exception), a shutdown (administrator's or after a crash), a start
	// in progress, all connections taken.
	classConnection       = "08"
	codeAdminShutdown     = "57P01"
	codeCrashShutdown     = "57P02"
	codeCannotConnectNow  = "57P03"
	codeTooManyConnection = "53300"
)

// kindOf gives a PostgreSQL error the store's error kind: a duplicate
// primary key or unique value is ErrAlreadyExists, a reference to a missing
// row (a team, a user) is ErrNotFound, a failed CHECK or NOT NULL is
// ErrInvalid, and a serialization failure, deadlock or lock timeout, which
// a retry may not meet again, is ErrUnavailable. So is a server that
// cannot be reached or that dropped the connection (restarting, shutting
// down, out of connections): the control plane answers 503 and its
// background work retries, rather than reporting an internal error.
// Other errors, and nil, are returned as they are. The SQLSTATE says which
// constraint failed without reading the message.
func kindOf(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if lostServer(err) {
		return &lostServerError{err}
	}
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

// lostServer reports whether err says that the server could not be
// reached, refused the session, or broke the connection: a failed dial or
// TLS handshake, a network error, a connection closed under the query, or
// the server's own word that it shuts down, is starting, or has no
// connection left.
func lostServer(err error) bool {
	var (
		connect *pgconn.ConnectError
		netErr  net.Error
		pe      *pgconn.PgError
	)
	if errors.As(err, &pe) {
		switch pe.Code {
		case codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow, codeTooManyConnection:
			return true
		}
		return strings.HasPrefix(pe.Code, classConnection)
	}
	return errors.As(err, &connect) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, net.ErrClosed)
}

// lostServerError is a database that cannot be reached, of kind
// ErrUnavailable. Its text says only that: the driver's error names the
// server's address, user and database, which an API answer (a 503 shows
// its message) must not carry; errors.As still finds it.
type lostServerError struct{ err error }

// Error says why, as far as that names no server: the server's own
// message, or the system's error of the connection.
func (e *lostServerError) Error() string {
	var (
		pe    *pgconn.PgError
		errno syscall.Errno
	)
	switch {
	case errors.As(e.err, &pe):
		return fmt.Sprintf("the database is unavailable: %s (SQLSTATE %s)", pe.Message, pe.Code)
	case errors.As(e.err, &errno):
		return "the database is unavailable: " + errno.Error()
	}
	return "the database is unavailable: connection lost"
}

func (e *lostServerError) Unwrap() []error { return []error{errdefs.ErrUnavailable, e.err} }
