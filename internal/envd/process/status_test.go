package process

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
)

// TestEndEventMatchesProcessState runs commands with os/exec (no Service is
// open, so its Wait is safe here) and checks that the end event describes
// each exit exactly as Go's os.ProcessState does, which is what E2B's envd
// reports.
func TestEndEventMatchesProcessState(t *testing.T) {
	for _, script := range []string{"exit 0", "exit 1", "exit 255", "kill -TERM $$", "kill -KILL $$", "kill -INT $$"} {
		c := exec.Command("/bin/sh", "-c", script)
		err := c.Run()
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			t.Fatalf("run %q: %v", script, err)
		}
		ps := c.ProcessState
		end := endEvent(ps.Sys().(syscall.WaitStatus))
		if end.GetStatus() != ps.String() || end.GetExitCode() != int32(ps.ExitCode()) || end.GetExited() != ps.Exited() {
			t.Errorf("%q: end {status %q, code %d, exited %v}, want {%q, %d, %v}",
				script, end.GetStatus(), end.GetExitCode(), end.GetExited(), ps.String(), ps.ExitCode(), ps.Exited())
		}
		// E2B's envd sets error to the text of exec's error for a failure.
		if want := err != nil; (end.Error != nil) != want || (want && end.GetError() != err.Error()) {
			t.Errorf("%q: end error %v, want %v", script, end.Error, err)
		}
	}
}
