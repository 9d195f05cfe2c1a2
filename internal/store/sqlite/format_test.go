package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"nestbox.dev/internal/store"
)

// TestStoredFormat pins how rows stand in the file: databases that earlier
// versions wrote are read by this one without a migration, and a file
// written now is read by them. Timestamps are UTC text at nanoseconds,
// booleans 0 and 1, lists and maps JSON.
func TestStoredFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nestbox.db")
	s := open(t, path)
	ctx := t.Context()
	zoned := time.Date(2025, 1, 2, 5, 4, 5, 7, time.FixedZone("UTC+2", 7200))
	if err := s.CreateUser(ctx, store.User{ID: "u1", Admin: true, CreatedAt: zoned}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	db := rawDB(t, path)
	var createdAt string
	var admin int
	if err := db.QueryRow("SELECT created_at, admin FROM users WHERE id = 'u1'").Scan(&createdAt, &admin); err != nil {
		t.Fatalf("read user row: %v", err)
	}
	if createdAt != "2025-01-02T03:04:05.000000007Z" || admin != 1 {
		t.Errorf("user row holds created_at %q, admin %d; want \"2025-01-02T03:04:05.000000007Z\", 1", createdAt, admin)
	}

	// Rows as an earlier version wrote them.
	for _, q := range []string{
		"INSERT INTO teams (id, name, created_at) VALUES ('t1', 'T', '2024-12-31T23:59:59.999999999Z')",
		`INSERT INTO capsules (id, team_id, template, status, error, vcpus, memory_mb, disk_mb, metadata, internet,
			allow_out, deny_out, host_id, envd_version, env_vars, access_token, created_at, updated_at, started_at)
		VALUES ('c1', 't1', 'base', 'running', '', 1, 512, 1024, '{"k":"v"}', 1, '["10.0.0.0/8"]', '[]', 'h1', '',
			'{}', 'tok', '2025-01-02T03:04:05.000000001Z', '2025-01-02T03:04:06.000000000Z', '2025-01-02T03:04:05.500000000Z')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("insert old row: %v", err)
		}
	}
	c, err := s.GetCapsule(ctx, "c1")
	if err != nil {
		t.Fatalf("GetCapsule of an old row: %v", err)
	}
	want := time.Date(2025, 1, 2, 3, 4, 5, 1, time.UTC)
	if !c.CreatedAt.Equal(want) || c.StartedAt == nil || !c.StartedAt.Equal(want.Add(500*time.Millisecond-1)) ||
		c.Metadata["k"] != "v" || len(c.AllowOut) != 1 || !c.Internet || c.EnvVars != nil || c.Generation != 1 {
		t.Errorf("old capsule row reads as %+v", c)
	}
	// The cursor of a page that ends at c1 still compares against the
	// text as stored.
	if _, err := db.Exec(`INSERT INTO capsules (id, team_id, template, status, error, vcpus, memory_mb, disk_mb,
		metadata, internet, allow_out, deny_out, host_id, envd_version, env_vars, access_token, created_at, updated_at)
		SELECT 'c2', team_id, template, status, error, vcpus, memory_mb, disk_mb, metadata, internet, allow_out,
			deny_out, host_id, envd_version, env_vars, access_token, '2025-01-02T03:04:05.000000002Z', updated_at
		FROM capsules WHERE id = 'c1'`); err != nil {
		t.Fatalf("insert second old row: %v", err)
	}
	page, cursor, err := s.ListCapsules(ctx, store.CapsuleFilter{TeamID: "t1", Limit: 1, Oldest: true})
	if err != nil || len(page) != 1 || page[0].ID != "c1" || cursor == "" {
		t.Fatalf("first page = %v, %q, %v; want c1 and a cursor", page, cursor, err)
	}
	page, cursor, err = s.ListCapsules(ctx, store.CapsuleFilter{TeamID: "t1", Limit: 1, Oldest: true, Cursor: cursor})
	if err != nil || len(page) != 1 || page[0].ID != "c2" || cursor != "" {
		t.Errorf("second page = %v, %q, %v; want c2 and no cursor", page, cursor, err)
	}
}
