package cli

import (
	"strings"
	"testing"
)

func TestCapsulePauseResume(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("cap1", nil)
	res := f.runIO(t, Capsule, IO{StderrIsTerminal: true}, "pause", "--no-memory", "cap1")
	if res.err != nil || strings.TrimSpace(res.stdout) != "cap1" {
		t.Fatalf("pause: %v, stdout %q", res.err, res.stdout)
	}
	if !strings.Contains(res.stderr, "pausing capsule cap1... paused") {
		t.Errorf("pause progress %q, want it to say pausing ... paused", res.stderr)
	}
	if len(f.pauses) != 1 || f.pauses[0].Memory == nil || *f.pauses[0].Memory {
		t.Errorf("pause requests %+v, want one with memory false", f.pauses)
	}
	res = f.run(t, Capsule, "", "ls")
	if !strings.Contains(res.stdout, "paused") || !strings.Contains(res.stdout, "frozen") {
		t.Errorf("ls of a paused capsule:\n%s\nwant status paused and expiry frozen", res.stdout)
	}
	if res = f.run(t, Capsule, "", "pause", "cap1"); res.err == nil || !strings.Contains(res.err.Error(), "paused") {
		t.Errorf("pause of a paused capsule: %v, want a conflict naming its status", res.err)
	}
	res = f.runIO(t, Capsule, IO{StderrIsTerminal: true}, "resume", "--timeout", "10m", "cap1")
	if res.err != nil || strings.TrimSpace(res.stdout) != "cap1" || !strings.Contains(res.stderr, "resuming capsule cap1... running") {
		t.Fatalf("resume: %v, stdout %q, stderr %q", res.err, res.stdout, res.stderr)
	}
	if len(f.resumes) != 1 || f.resumes[0].TimeoutSeconds != 600 || f.resumes[0].Memory != nil {
		t.Errorf("resume requests %+v, want one with 600 s and the memory kept", f.resumes)
	}
	f.run(t, Capsule, "", "pause", "cap1")
	if res = f.run(t, Capsule, "", "resume", "--reboot", "cap1"); res.err != nil {
		t.Fatalf("resume --reboot: %v", res.err)
	}
	if len(f.resumes) != 2 || f.resumes[1].Memory == nil || *f.resumes[1].Memory {
		t.Errorf("resume requests %+v, want the second with memory false", f.resumes)
	}
	if res = f.run(t, Capsule, "", "resume", "--timeout", "-1s", "cap1"); res.err == nil {
		t.Error("resume --timeout -1s: no error")
	}
	// --no-wait returns while the capsule is on its way; ls shows the
	// transient status as such.
	if res = f.run(t, Capsule, "", "pause", "--no-wait", "cap1"); res.err != nil || strings.TrimSpace(res.stdout) != "cap1" {
		t.Fatalf("pause --no-wait: %v, %q", res.err, res.stdout)
	}
	if res = f.run(t, Capsule, "", "ls"); !strings.Contains(res.stdout, "pausing…") {
		t.Errorf("ls during a pause:\n%s\nwant pausing…", res.stdout)
	}
}

func TestCapsuleFork(t *testing.T) {
	f := newFakeServer(t)
	f.addCapsule("cap1", nil)
	res := f.runIO(t, Capsule, IO{StderrIsTerminal: true}, "fork", "--count", "2", "--timeout", "10m", "cap1")
	if res.err != nil || res.stdout != "cap1-fork1\ncap1-fork2\n" || !strings.Contains(res.stderr, "forking capsule cap1 into 2... done") {
		t.Fatalf("fork: %v, stdout %q, stderr %q", res.err, res.stdout, res.stderr)
	}
	if len(f.forks) != 1 || f.forks[0].Count != 2 || f.forks[0].TimeoutSeconds != 600 {
		t.Errorf("fork requests %+v, want one for 2 forks of 600 s", f.forks)
	}
	// A refused fork is an error that names it; the others are printed.
	res = f.run(t, Capsule, "", "fork", "--count", "3", "cap1")
	if res.err == nil || !strings.Contains(res.err.Error(), "fork 3 of cap1: resource_exhausted") || strings.Count(res.stdout, "\n") != 2 {
		t.Errorf("fork with one refused: %v, stdout %q", res.err, res.stdout)
	}
	for _, args := range [][]string{{"fork", "--count", "0", "cap1"}, {"fork", "cap1", "cap2"}, {"fork"}} {
		if res := f.run(t, Capsule, "", args...); res.err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
