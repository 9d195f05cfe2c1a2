package postgres

import (
	"testing"

	"nestbox.dev/internal/store/migrations"
)

// TestEmbeddedMigrations guards the build: the embedded files must be the
// versions 1 to Latest in increasing order, each with an up and a down.
func TestEmbeddedMigrations(t *testing.T) {
	ms, err := migrations.Load(migrationFiles, Latest)
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	if len(ms) == 0 || ms[0].Version != 1 || ms[len(ms)-1].Version != Latest {
		t.Errorf("embedded migrations %+v: want versions 1 to Latest = %d", ms, Latest)
	}
}
