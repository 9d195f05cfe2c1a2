package lifecycle

import (
	"testing"
	"time"

	"nestbox.dev"
	"nestbox.dev/internal/store"
)

// TestEventCarriesTheChange: the event of a change carries all of it, so
// that the consumer applying an unrecorded event applies the same change.
func TestEventCarriesTheChange(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	u := store.StatusUpdate{To: nestbox.StatusRunning, Reason: "created", HostID: "h1", EnvdVersion: "0.6.13", DiskMB: 5120,
		StartedAt: at, ExpiresAt: at.Add(time.Minute), At: at}
	if got := updateOf(eventOf("c1", nestbox.StatusStarting, u)); got != u {
		t.Errorf("update -> event -> update: %+v, want %+v", got, u)
	}
}
