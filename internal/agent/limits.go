package agent

import (
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"
)

// minOpenFiles is the open-files limit the agent wants: the proxy holds
// two sockets per open connection to a sandbox and every create and
// destroy has a few files open for a moment, for each of hundreds of
// sandboxes. Many hosts' hard limit is far above it; a soft limit of
// 1024 is not.
const minOpenFiles = 1 << 16

// raiseOpenFiles raises the process's soft RLIMIT_NOFILE to its hard
// limit, and both to minOpenFiles when the hard limit is lower and the
// process may raise it (root may, up to fs.nr_open). Go's runtime raises
// the soft limit at start already; this makes it not depend on that, and
// on the hard limit the service was started with. It returns the soft
// limit in force.
func raiseOpenFiles(log *slog.Logger) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("open files limit: %w", err)
	}
	want := lim
	want.Cur = lim.Max
	if want.Max < minOpenFiles {
		want.Cur, want.Max = minOpenFiles, minOpenFiles
	}
	if want == lim {
		return lim.Cur, nil
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
		// Not allowed to raise the hard limit: the soft one up to it.
		want = unix.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			return lim.Cur, fmt.Errorf("raise open files limit to %d: %w", want.Cur, err)
		}
	}
	if want.Cur < minOpenFiles {
		log.Warn("the open files limit is low for many sandboxes", "limit", want.Cur, "want", minOpenFiles)
	}
	return want.Cur, nil
}
