-- A team's scope team entries in order, for the per-team cap of the audit
-- log: counting each team's entries (one range of the index, read alone)
-- and finding the oldest past the cap. It serves GET /v1/audit-logs
-- (team and scope team, newest first) as well.
CREATE INDEX audit_entries_scope_team ON audit_entries (scope, team_id, created_at, id);
