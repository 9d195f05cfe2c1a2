package gvisor

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// settledCommands are the runsc commands that change a sandbox's state
// and that Settle waits for. runsc's own sandbox and gofer processes
// ("boot", "gofer") are the sandboxes themselves, and read-only commands
// (state, list, events) change nothing.
var settledCommands = map[string]bool{
	"create": true, "start": true, "run": true, "restore": true, "checkpoint": true,
	"delete": true, "kill": true, "pause": true, "resume": true,
}

// Settle waits for the runsc commands that another process (an agent
// that was killed) left running over this driver's root to end, and
// kills the ones still running when SettleTimeout has passed. runsc runs
// in its own process group (see command), so a restore or checkpoint
// outlives an agent killed in its middle and may change the sandbox's
// state after a restarted agent has read it: a restore found not yet
// started would then finish under an agent that believes the sandbox
// paused, and the next restore of that ID fails. The agent calls Settle
// before it reads any state. Commands this process started are not
// waited for.
func (d *Driver) Settle(ctx context.Context) error {
	pids, err := d.orphanCommands()
	if err != nil {
		return fmt.Errorf("settle runsc commands: %w", err)
	}
	if len(pids) == 0 {
		return nil
	}
	d.log.Warn("waiting for runsc commands of a previous agent to end", "pids", pids)
	wctx, cancel := context.WithTimeout(ctx, d.cfg.SettleTimeout)
	defer cancel()
	for _, pid := range pids {
		p := pidExit(pid)
		p.wait(wctx)
		p.close()
	}
	for _, pid := range pids {
		if !alive(pid) {
			continue
		}
		d.log.Warn("killing a runsc command of a previous agent that did not end", "pid", pid, "after", d.cfg.SettleTimeout)
		p := pidExit(pid)
		unix.Kill(pid, unix.SIGKILL)
		kctx, kcancel := context.WithTimeout(ctx, 5*time.Second)
		p.wait(kctx)
		kcancel()
		p.close()
		if alive(pid) {
			return fmt.Errorf("settle runsc commands: pid %d did not die", pid)
		}
	}
	return nil
}

// orphanCommands lists the processes, not children of this one, whose
// command line is a state-changing runsc command over d's root.
func (d *Driver) orphanCommands() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	rootFlag := "--root=" + d.cfg.Root
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(cmdline, []byte(rootFlag)) {
			continue // gone, or not ours
		}
		if !settledCommand(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), rootFlag) {
			continue
		}
		if _, parent, _ := procStat(pid); parent == self {
			continue
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// settledCommand reports whether argv runs runsc with rootFlag and one of
// settledCommands: the subcommand is the first argument after rootFlag
// that is not a flag (the driver passes its global flags as --name=value).
func settledCommand(argv []string, rootFlag string) bool {
	for i, arg := range argv {
		if arg != rootFlag {
			continue
		}
		for _, a := range argv[i+1:] {
			if !strings.HasPrefix(a, "-") {
				return settledCommands[a]
			}
		}
		return false
	}
	return false
}

// procStat reads a process's state letter and parent from
// /proc/PID/stat; ok is false if it cannot be read. The command name in
// parentheses may hold spaces: the fields start after its closing
// parenthesis ("state ppid ...").
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0][0], ppid, true
}

// alive reports whether pid is a process that has not exited (a zombie
// has exited).
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z'
}
