package agent

import (
	"fmt"
	"strings"
	"time"
)

// stepTimes records how long each step of one pause or resume took, for
// its log line: the per-step cost is what a slow pause is read from.
// Not safe for concurrent use; one operation owns it.
type stepTimes struct {
	start, last time.Time
	b           strings.Builder
}

func newStepTimes() *stepTimes {
	now := time.Now()
	return &stepTimes{start: now, last: now}
}

// mark ends step name now and returns how long it took.
func (s *stepTimes) mark(name string) time.Duration {
	now := time.Now()
	if s.b.Len() > 0 {
		s.b.WriteByte(' ')
	}
	d := now.Sub(s.last)
	fmt.Fprintf(&s.b, "%s=%s", name, d.Round(100*time.Microsecond))
	s.last = now
	return d
}

// String lists the steps marked so far as name=duration.
func (s *stepTimes) String() string { return s.b.String() }

// total is the time since the operation started.
func (s *stepTimes) total() time.Duration { return time.Since(s.start) }
