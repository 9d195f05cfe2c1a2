// Package capsulestate is the capsule lifecycle's state machine: the one
// table of capsule statuses and the transitions allowed between them. Every
// writer of a capsule's status (internal/lifecycle's create, destroy,
// pause, resume, timeout, reconciler, event consumer and host events) asks
// it before a compare-and-set; the store and the API only carry statuses.
//
// The statuses themselves are the API's wire constants (nestbox.Status*);
// the rules about them live here. Only the control plane imports it.
package capsulestate

import (
	"fmt"
	"slices"

	"nestbox.dev"
)

// Status is a capsule's status, as the API spells it.
type Status = nestbox.Status

// The statuses, re-exported so that callers of the machine need not mix
// two packages' names. StatusMissing is the control plane's own: the host
// of the capsule stopped answering, so nobody knows what it runs.
const (
	Starting = nestbox.StatusStarting
	Running  = nestbox.StatusRunning
	Pausing  = nestbox.StatusPausing
	Paused   = nestbox.StatusPaused
	Resuming = nestbox.StatusResuming
	Stopping = nestbox.StatusStopping
	Stopped  = nestbox.StatusStopped
	Error    = nestbox.StatusError
	Missing  = nestbox.StatusMissing
)

// kind is what a status means to the control plane.
type kind int

const (
	// steady: nothing is in flight; the capsule stays here until asked.
	steady kind = iota
	// transient: work is in flight (in this process, or in one that died:
	// the reconciler resolves it).
	transient
	// final: the capsule is gone for good and never changes again.
	final
)

// state is one row of the table.
type state struct {
	kind kind
	// to lists the statuses this one may move to, each with why.
	to map[Status]string
}

// table is the state machine. docs/architecture.md draws it; keep the two
// in step (TestTableMatchesDocs checks the doc's table).
var table = map[Status]state{
	Starting: {transient, map[Status]string{
		Running:  "the host created the sandbox",
		Error:    "the create failed, or did not finish",
		Stopping: "destroy requested while starting",
	}},
	Running: {steady, map[Status]string{
		Pausing:  "pause requested",
		Paused:   "the host paused it at its timeout (auto-pause)",
		Stopping: "destroy requested",
		Stopped:  "the host destroyed it at its timeout",
		Error:    "the sandbox crashed, or the host lost it",
		Missing:  "its host stopped answering",
	}},
	Pausing: {transient, map[Status]string{
		Paused:   "the host wrote the snapshot",
		Running:  "the pause failed; the sandbox still runs",
		Error:    "the pause failed and the sandbox is gone",
		Stopping: "destroy requested while pausing",
	}},
	Paused: {steady, map[Status]string{
		Resuming: "resume requested (by the API, or by traffic with auto-resume)",
		Stopping: "destroy requested",
		Stopped:  "the host destroyed the paused sandbox",
		Error:    "the host lost the paused sandbox",
		Missing:  "its host stopped answering",
	}},
	Resuming: {transient, map[Status]string{
		Running:  "the host restored the sandbox",
		Paused:   "the resume failed before starting anything; the snapshot is intact",
		Error:    "the resume failed (the snapshot failed its check, or the host destroyed what it restored)",
		Stopping: "destroy requested while resuming",
	}},
	Stopping: {transient, map[Status]string{
		Stopped: "the host destroyed the sandbox",
	}},
	Missing: {steady, map[Status]string{
		Running:  "its host answers again and runs it",
		Paused:   "its host answers again and holds it paused",
		Stopping: "destroy requested",
		Stopped:  "its host answers again without it, after its timeout",
		Error:    "its host answers again without it",
	}},
	Stopped: {final, nil},
	Error:   {final, nil},
}

// All lists every status, in the table's reading order.
func All() []Status {
	return []Status{Starting, Running, Pausing, Paused, Resuming, Stopping, Stopped, Error, Missing}
}

// Known reports whether st is a status of the table.
func Known(st Status) bool { _, ok := table[st]; return ok }

// Allowed reports whether a capsule may move from from to to.
func Allowed(from, to Status) bool {
	_, ok := table[from].to[to]
	return ok
}

// Why is the table's reason for the transition from → to, "" if it is not
// allowed.
func Why(from, to Status) string { return table[from].to[to] }

// Next lists the statuses from may move to, in the order of All.
func Next(from Status) []Status {
	var out []Status
	for _, st := range All() {
		if Allowed(from, st) {
			out = append(out, st)
		}
	}
	return out
}

// Sources lists the statuses that may move to to, in the order of All.
func Sources(to Status) []Status {
	var out []Status
	for _, st := range All() {
		if Allowed(st, to) {
			out = append(out, st)
		}
	}
	return out
}

// Transient reports whether work is in flight on a capsule in st: it is
// moving to another status by itself.
func Transient(st Status) bool { return Known(st) && table[st].kind == transient }

// Final reports whether a capsule in st is gone for good.
func Final(st Status) bool { return Known(st) && table[st].kind == final }

// Live reports whether a capsule in st counts against its team's quota:
// every status but the final ones. A paused capsule holds no memory or
// CPU on its host, but it holds its claim to them: its resume must not
// find the team over its limits.
func Live(st Status) bool { return Known(st) && !Final(st) }

// LiveStatuses lists the statuses Live accepts.
func LiveStatuses() []Status {
	return slices.DeleteFunc(All(), func(st Status) bool { return !Live(st) })
}

// Check returns an error unless every status of from may move to to: a
// writer that asks for a transition the table lacks has a bug, which
// this stops before it reaches the store.
func Check(from []Status, to Status) error {
	if len(from) == 0 {
		return fmt.Errorf("capsule status change to %s: no status to move from", to)
	}
	for _, f := range from {
		if !Allowed(f, to) {
			return fmt.Errorf("capsule status change %s -> %s is not in the state machine", f, to)
		}
	}
	return nil
}
