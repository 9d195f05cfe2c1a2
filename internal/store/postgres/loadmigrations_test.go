package postgres

import (
	"testing"

	"nestbox.dev/internal/store/migrations"
)

// TestEmbeddedMigrations guards the build: the embedded files must be the
// versions 1 to Latest, each with an up and a down.
func TestEmbeddedMigrations(t *testing.T) {
	ms, err := migrations.Load(migrationFiles, Latest)
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	if len(ms) != Latest {
		t.Errorf("%d migrations embedded, want Latest = %d", len(ms), Latest)
	}
}
