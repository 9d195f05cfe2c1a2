package agent

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// DefaultLogMaxBytes is the default cap of each host-side log of a
// sandbox (console.log, runsc.log).
const DefaultLogMaxBytes = 8 << 20

// logDir is where the driver writes sb's console and runsc logs: on the
// writable layer's file system (so the sandbox's disk limit bounds them,
// whatever it prints between two trims) but outside the overlay's upper
// directory (so the sandbox cannot see or change them).
func logDir(sb *sandbox) string { return filepath.Join(sb.layer.UpperMount, "logs") }

// trimLogs caps the logs of the running sandboxes: a log past
// LogMaxBytes keeps its last quarter in <name>.1 and starts again empty.
// Its writers append (O_APPEND), so they go on writing at the new end.
func (a *Agent) trimLogs() {
	for _, sb := range a.allRunning() {
		for _, name := range []string{"console.log", "runsc.log"} {
			if err := trimLog(filepath.Join(logDir(sb), name), a.cfg.LogMaxBytes); err != nil {
				sb.log.Warn("trim log", "log", name, "err", err)
			}
		}
	}
}

// trimLog rotates path once it is larger than max: its last max/4 bytes
// replace path.1, and path is truncated.
func trimLog(path string, max int64) error {
	// The common case, a small log, costs one stat and no open.
	if st, err := os.Stat(path); err != nil || st.Size() <= max {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= max {
		return err
	}
	keep := max / 4
	tail := make([]byte, keep)
	n, err := f.ReadAt(tail, st.Size()-keep)
	if err != nil && err != io.EOF {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.WriteFile(path+".1", tail[:n], 0o600); err != nil {
		return err
	}
	return f.Truncate(0)
}
