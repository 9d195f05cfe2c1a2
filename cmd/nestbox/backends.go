package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"nestbox.dev/internal/events"
	"nestbox.dev/internal/events/memory"
	redisevents "nestbox.dev/internal/events/redis"
	"nestbox.dev/internal/store"
	"nestbox.dev/internal/store/postgres"
	"nestbox.dev/internal/store/sqlite"
)

// openStore opens the control plane's database: PostgreSQL when url is
// set (postgres://...), else the embedded SQLite file in dataDir.
func openStore(ctx context.Context, dataDir, url string) (store.Store, error) {
	if url != "" {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "nestbox.db"))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return st, nil
}

// openEvents opens the event stream: Redis Streams when url is set
// (redis://...), else the in-process stream.
func openEvents(ctx context.Context, url string, log *slog.Logger) (events.Stream, error) {
	if url == "" {
		return memory.New(), nil
	}
	ev, err := redisevents.New(ctx, redisevents.Config{URL: url, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open Redis: %w", err)
	}
	return ev, nil
}
