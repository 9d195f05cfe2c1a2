// Package drivertest is the conformance suite every sandbox driver passes:
// drivertest.Run(t, newEnv) checks the contract of package driver (create,
// state, stats, list, idempotent destroy, the optional pause and checkpoint
// abilities) against a real or fake driver. Imported by drivers' tests.
package drivertest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"nestbox.dev/internal/driver"
	"nestbox.dev/internal/errdefs"
)

// Env is one driver under test and how to make specs it can run.
type Env struct {
	Driver driver.Driver
	// NewSpec returns a runnable spec with a fresh unique ID; it prepares
	// whatever the driver needs (rootfs, netns) and registers its own
	// cleanup with t.
	NewSpec func(t *testing.T) driver.Spec
	// Healthy, if set, waits until the sandbox's first process serves and
	// returns an error if it does not (real drivers check envd).
	Healthy func(ctx context.Context, t *testing.T, spec driver.Spec) error
	// Parallel is how many sandboxes the concurrency test creates at once;
	// zero means 4.
	Parallel int
}

// Run runs the suite. newEnv is called once.
func Run(t *testing.T, newEnv func(t *testing.T) Env) {
	env := newEnv(t)
	if env.Parallel == 0 {
		env.Parallel = 4
	}
	ctx := context.Background()

	t.Run("Lifecycle", func(t *testing.T) {
		spec := env.NewSpec(t)
		if st, err := env.Driver.State(ctx, spec.ID); err != nil || st != driver.StateNotFound {
			t.Fatalf("state before create: %v, %v; want not-found", st, err)
		}
		if err := env.Driver.Create(ctx, spec); err != nil {
			t.Fatalf("create: %v", err)
		}
		t.Cleanup(func() { env.Driver.Destroy(context.WithoutCancel(ctx), spec.ID) })
		if st, err := env.Driver.State(ctx, spec.ID); err != nil || st != driver.StateRunning {
			t.Fatalf("state after create: %v, %v; want running", st, err)
		}
		if env.Healthy != nil {
			hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := env.Healthy(hctx, t, spec); err != nil {
				t.Fatalf("first process not healthy: %v", err)
			}
		}
		ids, err := env.Driver.List(ctx)
		if err != nil || !slices.Contains(ids, spec.ID) {
			t.Fatalf("list: %v, %v; want it to contain %s", ids, err, spec.ID)
		}
		stats, err := env.Driver.Stats(ctx, spec.ID)
		if err != nil || stats.MemoryBytes == 0 || stats.At.IsZero() {
			t.Fatalf("stats: %+v, %v; want memory > 0 and a time", stats, err)
		}
		if err := env.Driver.Create(ctx, spec); !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Fatalf("second create with the same id: got %v, want already exists", err)
		}
		if err := env.Driver.Destroy(ctx, spec.ID); err != nil {
			t.Fatalf("destroy: %v", err)
		}
		if st, err := env.Driver.State(ctx, spec.ID); err != nil || st != driver.StateNotFound {
			t.Fatalf("state after destroy: %v, %v; want not-found", st, err)
		}
		if err := env.Driver.Destroy(ctx, spec.ID); err != nil {
			t.Fatalf("second destroy: %v; want nil", err)
		}
		if _, err := env.Driver.Stats(ctx, spec.ID); !errors.Is(err, errdefs.ErrNotFound) {
			t.Fatalf("stats after destroy: got %v, want not found", err)
		}
	})

	t.Run("UnknownID", func(t *testing.T) {
		if err := env.Driver.Destroy(ctx, "nbx-never-created-0000"); err != nil {
			t.Fatalf("destroy unknown: %v", err)
		}
		if st, err := env.Driver.State(ctx, "nbx-never-created-0000"); err != nil || st != driver.StateNotFound {
			t.Fatalf("state unknown: %v, %v", st, err)
		}
	})

	t.Run("InvalidSpec", func(t *testing.T) {
		spec := env.NewSpec(t)
		spec.ID = ""
		if err := env.Driver.Create(ctx, spec); err == nil {
			env.Driver.Destroy(ctx, spec.ID)
			t.Fatal("create with an empty id succeeded")
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		specs := make([]driver.Spec, env.Parallel)
		for i := range specs {
			specs[i] = env.NewSpec(t)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(specs))
		for i, s := range specs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if errs[i] = env.Driver.Create(ctx, s); errs[i] == nil {
					errs[i] = env.Driver.Destroy(ctx, s.ID)
				}
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("sandbox %s: %v", specs[i].ID, err)
			}
		}
		ids, _ := env.Driver.List(ctx)
		for _, s := range specs {
			if slices.Contains(ids, s.ID) {
				t.Errorf("%s still listed after destroy", s.ID)
			}
		}
	})

	if p, ok := env.Driver.(driver.Pauser); ok {
		t.Run("PauseResume", func(t *testing.T) {
			spec := env.NewSpec(t)
			if err := env.Driver.Create(ctx, spec); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { env.Driver.Destroy(context.WithoutCancel(ctx), spec.ID) })
			if err := p.Pause(ctx, spec.ID); err != nil {
				t.Fatalf("pause: %v", err)
			}
			if st, _ := env.Driver.State(ctx, spec.ID); st != driver.StatePaused {
				t.Fatalf("state after pause: %v", st)
			}
			if err := p.Resume(ctx, spec.ID); err != nil {
				t.Fatalf("resume: %v", err)
			}
			if st, _ := env.Driver.State(ctx, spec.ID); st != driver.StateRunning {
				t.Fatalf("state after resume: %v", st)
			}
			if env.Healthy != nil {
				hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				if err := env.Healthy(hctx, t, spec); err != nil {
					t.Fatalf("not healthy after resume: %v", err)
				}
			}
		})
	}

	if c, ok := env.Driver.(driver.Checkpointer); ok {
		t.Run("CheckpointRestore", func(t *testing.T) {
			spec := env.NewSpec(t)
			if err := env.Driver.Create(ctx, spec); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { env.Driver.Destroy(context.WithoutCancel(ctx), spec.ID) })
			img := t.TempDir()
			if p, ok := env.Driver.(driver.Pauser); ok {
				if err := p.Pause(ctx, spec.ID); err != nil {
					t.Fatalf("pause: %v", err)
				}
				if err := c.Checkpoint(ctx, spec.ID, img); !errors.Is(err, errdefs.ErrConflict) {
					t.Fatalf("checkpoint of a paused sandbox: got %v, want a conflict", err)
				}
				if st, _ := env.Driver.State(ctx, spec.ID); st != driver.StatePaused {
					t.Fatalf("state after a refused checkpoint: %v, want paused", st)
				}
				if err := p.Resume(ctx, spec.ID); err != nil {
					t.Fatalf("resume: %v", err)
				}
			}
			if err := c.Checkpoint(ctx, spec.ID, img); err != nil {
				t.Fatalf("checkpoint: %v", err)
			}
			if st, _ := env.Driver.State(ctx, spec.ID); st == driver.StateRunning {
				t.Fatal("still running after checkpoint")
			}
			if err := c.Restore(ctx, spec, img); err != nil {
				t.Fatalf("restore: %v", err)
			}
			if st, _ := env.Driver.State(ctx, spec.ID); st != driver.StateRunning {
				t.Fatalf("state after restore: %v", st)
			}
		})
	}
}
