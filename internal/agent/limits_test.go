package agent

import (
	"log/slog"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaiseOpenFiles lowers the soft open-files limit as a service
// manager may start the agent with, and checks that it is raised to the
// hard limit again (and to minOpenFiles where the hard one allows).
func TestRaiseOpenFiles(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &orig) })
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 256, Max: orig.Max}); err != nil {
		t.Fatal(err)
	}
	got, err := raiseOpenFiles(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var now unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &now); err != nil {
		t.Fatal(err)
	}
	if now.Cur != got || now.Cur != now.Max || now.Cur < min(orig.Max, minOpenFiles) {
		t.Errorf("after raising: soft %d, hard %d (returned %d); want soft = hard >= %d", now.Cur, now.Max, got, min(orig.Max, minOpenFiles))
	}
}
