-- A fleet's hosts (issue 13): they register with a join token and then
-- heartbeat. agent_token is the secret the agent requires of the control
-- plane; capacity is the last heartbeat's report (JSON).
ALTER TABLE hosts ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN agent_token TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'cordoned', 'draining'));
ALTER TABLE hosts ADD COLUMN unreachable INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN capacity TEXT NOT NULL DEFAULT '{}';

-- Join tokens: only the hash of the secret is kept.
CREATE TABLE join_tokens (
	id         TEXT PRIMARY KEY CHECK (id <> ''),
	hash       TEXT NOT NULL UNIQUE,
	created_by TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	uses_left  INTEGER NOT NULL CHECK (uses_left >= 0)
) STRICT;

-- Leases: work that must run once among several control planes (the host
-- monitor, the reconciler) runs under one.
CREATE TABLE leases (
	name       TEXT PRIMARY KEY CHECK (name <> ''),
	holder     TEXT NOT NULL,
	expires_at TEXT NOT NULL
) STRICT;
