package lifecycle_test

import (
	"context"
	"testing"

	"nestbox.dev"
	"nestbox.dev/internal/lifecycle/fakehost"
)

// TestCapsuleRecordsItsDisk: a capsule that asks for no disk records the
// size its host gave it once it runs (0 only while starting), one that
// asks for a size records that.
func TestCapsuleRecordsItsDisk(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		asked, want int
	}{{0, fakehost.DefaultDiskBytes >> 20}, {1000, 1000}} {
		c, err := f.svc.Create(context.Background(), team, nestbox.CreateCapsuleRequest{DiskMB: tc.asked})
		if err != nil {
			t.Fatal(err)
		}
		if c.DiskMB != tc.asked {
			t.Errorf("create of %d MiB answered disk_mb %d while starting", tc.asked, c.DiskMB)
		}
		if got := f.settle(t, c.ID, nestbox.StatusRunning); got.DiskMB != tc.want {
			t.Errorf("asked for %d MiB: running capsule has disk_mb %d, want %d (what the host gave)", tc.asked, got.DiskMB, tc.want)
		}
	}
}
