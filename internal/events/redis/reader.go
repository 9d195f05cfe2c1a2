package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"nestbox.dev"
)

// Reader tuning. batch is well below DefaultBuffer so that one read cannot
// overflow a subscriber on its own.
const (
	batch        = 256
	blockFor     = 5 * time.Second
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// cursor is how far the reader got: the last entry it read, and how many
// entries the key had received up to and including it (XINFO STREAM's
// entries-added at that entry), which tells whether Redis trimmed unread
// entries.
type cursor struct {
	pos   streamID
	added int64
}

// read follows the stream key from after cur until ctx is done, fanning
// every entry out to the subscribers. It never gives up: when Redis fails it
// logs, retries with backoff, and once reconnected tells every subscriber
// with a gap marker (publishes may have failed meanwhile).
//
// Each round reads what is there (fetch) and, when nothing is, waits with a
// blocking XREAD whose entries it leaves for the next fetch: fetch alone
// learns, atomically with the read, whether Redis trimmed unread entries.
func (s *Stream) read(ctx context.Context, cur cursor) {
	var (
		backoff time.Duration
		failing bool
	)
	for ctx.Err() == nil {
		if s.beforeRead != nil {
			s.beforeRead()
		}
		got, next, err := s.fetch(ctx, cur)
		if err == nil {
			if failing {
				s.log.Info("reading the event stream again")
				s.fan(entry{id: maxID, ev: gapMarker("lost the connection to redis")})
				failing, backoff = false, 0
			}
			for _, e := range got {
				s.fan(e)
			}
			cur = next
			if len(got) > 0 {
				continue
			}
			err = s.wait(ctx, cur.pos)
		}
		if err == nil || ctx.Err() != nil {
			continue
		}
		failing = true
		backoff = min(max(2*backoff, firstBackoff), maxBackoff)
		s.log.Warn("read the event stream; retrying", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
	}
}

// fetch returns up to batch entries after cur, preceded by a gap marker when
// Redis trimmed entries after cur before they were read, and the cursor
// after them. It uses one MULTI/EXEC, so that the trim check and the read
// see the same stream.
func (s *Stream) fetch(ctx context.Context, cur cursor) ([]entry, cursor, error) {
	var (
		info *goredis.XInfoStreamCmd
		read *goredis.XStreamSliceCmd
	)
	exists, err := s.inspect(ctx, func(p goredis.Pipeliner, infoCmd *goredis.XInfoStreamCmd) {
		info = infoCmd
		// Block -1: no BLOCK argument (it would mean nothing in MULTI).
		read = p.XRead(ctx, &goredis.XReadArgs{Streams: []string{s.key, cur.pos.String()}, Count: batch, Block: -1})
	})
	if err != nil || !exists {
		return nil, cur, err
	}
	var out []entry
	// Trimming removes the oldest entries, so the entries the key no longer
	// has are the first entries-added minus length ones: if that count
	// passes cur, the entry after cur was dropped unread. (XDEL by someone
	// else would make this count too high: a spurious marker, no loss.)
	st := info.Val()
	if removed := st.EntriesAdded - st.Length; removed > cur.added {
		first, err := parseID(cmpOr(st.RecordedFirstEntryID, st.FirstEntry.ID))
		if err != nil || first == (streamID{}) {
			first = maxID
		}
		// A subscription that started at or after the first surviving
		// entry lost nothing.
		out = append(out, entry{id: first, ev: gapMarker("redis trimmed events before they were read")})
		cur.added = removed
	}
	streams, err := read.Result()
	if errors.Is(err, goredis.Nil) {
		return out, cur, nil
	}
	if err != nil {
		return nil, cur, fmt.Errorf("read %s: %w", s.key, err)
	}
	for _, st := range streams {
		for _, msg := range st.Messages {
			e, ok := s.decode(msg)
			out = append(out, e)
			if ok {
				cur.pos = e.id
				cur.added++
			}
		}
	}
	return out, cur, nil
}

// inspect runs XINFO STREAM, and the commands more adds, in one MULTI/EXEC.
// It reports whether the key exists; if it does not, info failed as it
// must, and the caller ignores more's results.
func (s *Stream) inspect(ctx context.Context, more func(goredis.Pipeliner, *goredis.XInfoStreamCmd)) (bool, error) {
	var (
		exists *goredis.IntCmd
		info   *goredis.XInfoStreamCmd
	)
	// The transaction's own error is that of its first failed command,
	// which may be the expected "no such key": each command is checked
	// instead.
	_, _ = s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		exists = p.Exists(ctx, s.key)
		info = p.XInfoStream(ctx, s.key)
		if more != nil {
			more(p, info)
		}
		return nil
	})
	n, err := exists.Result()
	if err != nil {
		return false, fmt.Errorf("inspect %s: %w", s.key, unavailable(err))
	}
	if n == 0 {
		return false, nil // nothing published yet
	}
	if err := info.Err(); err != nil {
		return false, fmt.Errorf("inspect %s: %w", s.key, unavailable(err))
	}
	return true, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// decode turns a stream entry into an event. An entry that is not one (a
// foreign writer, a newer format) becomes a gap marker: the subscriber
// missed something and must re-read the store.
// ok is false when even the ID cannot be parsed.
func (s *Stream) decode(msg goredis.XMessage) (e entry, ok bool) {
	id, err := parseID(msg.ID)
	if err != nil {
		// Redis made the ID; if it cannot be parsed nothing else can be
		// trusted either, but the reader must not stop.
		s.log.Error("skip stream entry", "id", msg.ID, "err", err)
		return entry{id: maxID, ev: gapMarker("unreadable stream entry " + msg.ID)}, false
	}
	var ev nestbox.CapsuleEvent
	data, ok := msg.Values[field].(string)
	if ok {
		err = json.Unmarshal([]byte(data), &ev)
	}
	if !ok || err != nil || ev.To == "" {
		s.log.Error("skip stream entry that is not a capsule event", "id", msg.ID, "err", err)
		return entry{id: id, ev: gapMarker("unreadable stream entry " + msg.ID)}, true
	}
	return entry{id: id, ev: ev}, true
}

// wait blocks until the key has entries after pos, or blockFor passes.
func (s *Stream) wait(ctx context.Context, pos streamID) error {
	err := s.client.XRead(ctx, &goredis.XReadArgs{Streams: []string{s.key, pos.String()}, Count: 1, Block: blockFor}).Err()
	if err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("wait for %s: %w", s.key, err)
	}
	return nil
}

// fan offers e to every subscriber. It holds s.mu, so that a subscriber
// registered by Subscribe gets either all of an entry's fan-out or none.
func (s *Stream) fan(e entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		sub.offer(e)
	}
}
