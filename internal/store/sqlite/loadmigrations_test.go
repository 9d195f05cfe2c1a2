package sqlite

import (
	"testing"

	"nestbox.dev/internal/store/migrations"
)

// TestEmbeddedMigrations guards the build: the embedded files must be the
// versions ascending up to Latest, each with an up and a down.
func TestEmbeddedMigrations(t *testing.T) {
	ms, err := migrations.Load(migrationFiles, Latest)
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	if len(ms) == 0 || ms[len(ms)-1].Version != Latest {
		t.Errorf("migrations %v embedded, want the last to be Latest = %d", ms, Latest)
	}
}
