-- The audit log: one row per audited action. team_id and the IDs of actor
-- and resource are not foreign keys: entries outlive what they name, and
-- a purged user's are anonymised (actor_id and resource_id cleared), not
-- deleted. Rows older than the retention are deleted by a daily worker.
CREATE TABLE audit_entries (
	id            TEXT PRIMARY KEY CHECK (id <> ''),
	created_at    TEXT NOT NULL,
	scope         TEXT NOT NULL CHECK (scope IN ('team', 'admin')),
	team_id       TEXT NOT NULL,
	actor_type    TEXT NOT NULL CHECK (actor_type IN ('user', 'api_key', 'system')),
	actor_id      TEXT NOT NULL,
	actor_name    TEXT NOT NULL,
	resource_type TEXT NOT NULL CHECK (resource_type <> ''),
	resource_id   TEXT NOT NULL,
	action        TEXT NOT NULL CHECK (action <> ''),
	status        TEXT NOT NULL CHECK (status IN ('success', 'failure')),
	metadata      TEXT NOT NULL CHECK (json_type(metadata) = 'object')
) STRICT;

-- A team's log (GET /v1/audit-logs) and the platform's by scope (GET
-- /v1/admin/audit-logs), each paged newest first by (created_at, id); the
-- scope index also serves the retention's delete of old rows.
CREATE INDEX audit_entries_team ON audit_entries (team_id, created_at, id);
CREATE INDEX audit_entries_scope ON audit_entries (scope, created_at, id);
