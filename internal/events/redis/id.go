package redis

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"nestbox.dev/internal/errdefs"
)

// streamID is a Redis stream entry ID, "<milliseconds>-<sequence>". IDs of a
// key only grow; the zero value is below every entry.
type streamID struct{ ms, seq uint64 }

// maxID is above every entry.
var maxID = streamID{math.MaxUint64, math.MaxUint64}

// parseID parses an entry ID as Redis returns it; "" (what a Redis before
// 7.0 reports for fields it does not know) is the zero ID.
func parseID(s string) (streamID, error) {
	if s == "" {
		return streamID{}, nil
	}
	msText, seqText, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, errdefs.Invalid("parse stream ID %q: no '-'", s)
	}
	ms, err := strconv.ParseUint(msText, 10, 64)
	if err != nil {
		return streamID{}, errdefs.Invalid("parse stream ID %q: %v", s, err)
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return streamID{}, errdefs.Invalid("parse stream ID %q: %v", s, err)
	}
	return streamID{ms, seq}, nil
}

func (id streamID) String() string { return fmt.Sprintf("%d-%d", id.ms, id.seq) }

// less reports whether id comes before other.
func (id streamID) less(other streamID) bool {
	if id.ms != other.ms {
		return id.ms < other.ms
	}
	return id.seq < other.seq
}
