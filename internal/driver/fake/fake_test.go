package fake

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/driver/drivertest"
)

func TestConformance(t *testing.T) {
	var n atomic.Int64
	drivertest.Run(t, func(t *testing.T) drivertest.Env {
		return drivertest.Env{
			Driver: &Driver{},
			NewSpec: func(t *testing.T) driver.Spec {
				return driver.Spec{ID: fmt.Sprintf("nbx-fake-%08d", n.Add(1)), Dir: t.TempDir()}
			},
		}
	})
}

func TestFailCreateAndCrash(t *testing.T) {
	boom := errors.New("boom")
	d := &Driver{FailCreate: boom}
	if err := d.Create(context.Background(), driver.Spec{ID: "a"}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	d.FailCreate = nil
	d.Create(context.Background(), driver.Spec{ID: "a"})
	d.Crash("a")
	if st, _ := d.State(context.Background(), "a"); st != driver.StateStopped {
		t.Fatalf("after crash: %v", st)
	}
}
