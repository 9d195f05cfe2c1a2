package capsulestate

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"nestbox.dev"
)

// TestWalkTable walks every status and every transition of the table and
// checks the machine's invariants: each status is reachable from starting,
// each non-final status can end (reach a final one), final statuses have
// no way out, transient statuses always have one, and no status moves to
// itself.
func TestWalkTable(t *testing.T) {
	if len(table) != len(All()) {
		t.Fatalf("the table has %d statuses, All lists %d", len(table), len(All()))
	}
	reached := map[Status]bool{Starting: true}
	queue := []Status{Starting}
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		for _, next := range Next(st) {
			if !Known(next) {
				t.Errorf("%s -> %s: %s is not in the table", st, next, next)
			}
			if !reached[next] {
				reached[next] = true
				queue = append(queue, next)
			}
		}
	}
	for _, st := range All() {
		if !reached[st] {
			t.Errorf("%s cannot be reached from starting", st)
		}
		if Allowed(st, st) {
			t.Errorf("%s may move to itself", st)
		}
		if Final(st) != (len(Next(st)) == 0) {
			t.Errorf("%s: Final %v but %d ways out", st, Final(st), len(Next(st)))
		}
		if Transient(st) && Final(st) {
			t.Errorf("%s is both transient and final", st)
		}
		if !Final(st) && !canEnd(st) {
			t.Errorf("%s can never reach a final status", st)
		}
		for _, next := range Next(st) {
			if Why(st, next) == "" {
				t.Errorf("%s -> %s has no reason", st, next)
			}
			if !slices.Contains(Sources(next), st) {
				t.Errorf("Sources(%s) lacks %s", next, st)
			}
		}
	}
}

// canEnd reports whether a final status can be reached from st.
func canEnd(st Status) bool {
	seen := map[Status]bool{}
	var walk func(Status) bool
	walk = func(s Status) bool {
		if Final(s) {
			return true
		}
		if seen[s] {
			return false
		}
		seen[s] = true
		return slices.ContainsFunc(Next(s), walk)
	}
	return walk(st)
}

// TestPauseCycle checks the cycle the issue asks for, edge by edge, and a
// few transitions that must never be allowed.
func TestPauseCycle(t *testing.T) {
	cycle := []Status{Starting, Running, Pausing, Paused, Resuming, Running}
	for i := 0; i+1 < len(cycle); i++ {
		if !Allowed(cycle[i], cycle[i+1]) {
			t.Errorf("%s -> %s is not allowed", cycle[i], cycle[i+1])
		}
	}
	for _, tc := range [][2]Status{
		{Paused, Pausing}, {Paused, Running}, {Running, Resuming}, {Stopped, Running},
		{Error, Running}, {Stopping, Running}, {Starting, Paused}, {Pausing, Resuming},
	} {
		if Allowed(tc[0], tc[1]) {
			t.Errorf("%s -> %s is allowed, want refused", tc[0], tc[1])
		}
	}
	if err := Check([]Status{Running, Paused}, Stopping); err != nil {
		t.Errorf("Check(running|paused -> stopping): %v", err)
	}
	if err := Check([]Status{Running, Stopped}, Stopping); err == nil {
		t.Error("Check(running|stopped -> stopping) = nil, want an error naming stopped")
	}
	if err := Check(nil, Running); err == nil {
		t.Error("Check(nothing -> running) = nil, want an error")
	}
}

// TestSDKAgrees checks that the SDK's own Final, which its callers use to
// stop waiting, says what the machine says.
func TestSDKAgrees(t *testing.T) {
	for _, st := range All() {
		if st.Final() != Final(st) {
			t.Errorf("nestbox.Status(%q).Final() = %v, the machine says %v", st, st.Final(), Final(st))
		}
	}
	if Live(Stopped) || Live(Error) || !Live(Paused) || !Live(Missing) {
		t.Error("Live: want every status but stopped and error")
	}
	if got := LiveStatuses(); len(got) != len(All())-2 {
		t.Errorf("LiveStatuses() = %v", got)
	}
	_ = nestbox.StatusRunning
}

// TestTableMatchesDocs checks that the transition table in
// docs/architecture.md lists exactly the machine's transitions.
func TestTableMatchesDocs(t *testing.T) {
	b, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatalf("read docs/architecture.md: %v", err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z]+)` \\| ([^|]*)\\|")
	doc := map[Status][]Status{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		var to []Status
		for _, f := range strings.Split(m[2], ",") {
			if f = strings.Trim(strings.TrimSpace(f), "`"); f != "" && f != "–" {
				to = append(to, Status(f))
			}
		}
		doc[Status(m[1])] = to
	}
	for _, st := range All() {
		want := Next(st)
		got, ok := doc[st]
		if !ok {
			t.Errorf("docs/architecture.md has no row for %s", st)
			continue
		}
		slices.Sort(got)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("docs/architecture.md: %s -> %v, the machine says %v", st, got, want)
		}
	}
}
