package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"nestbox.dev/internal/errdefs"
)

// TestKindOfLostServer checks that a server that is down, restarting or
// gone mid-query is ErrUnavailable (503, retried), not an unclassified
// error the API reports as internal, and that other errors keep their
// kind or none.
func TestKindOfLostServer(t *testing.T) {
	// A real failed dial: nothing listens on the port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, dialErr := pgx.Connect(context.Background(), "postgres://postgres@"+addr+"/postgres?sslmode=disable&connect_timeout=5")
	if dialErr == nil {
		t.Fatal("connected to a closed port")
	}
	for _, tc := range []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"refused dial", dialErr, true},
		{"reset connection", fmt.Errorf("read: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{"closed under the query", fmt.Errorf("query: %w", io.ErrUnexpectedEOF), true},
		{"closed connection", pgconn.ErrConnClosed, true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"cancelled", context.Canceled, false},
		{"other", errors.New("something else"), false},
	} {
		got := kindOf(tc.err)
		if errors.Is(got, errdefs.ErrUnavailable) != tc.unavailable {
			t.Errorf("kindOf(%s) = %v: unavailable %v, want %v", tc.name, got, !tc.unavailable, tc.unavailable)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("kindOf(%s) = %v lost the error it was given", tc.name, got)
		}
		if tc.unavailable && strings.Contains(got.Error(), "127.0.0.1") {
			t.Errorf("kindOf(%s) = %q names the server's address", tc.name, got)
		}
	}
	if kindOf(nil) != nil {
		t.Error("kindOf(nil) is not nil")
	}
}
