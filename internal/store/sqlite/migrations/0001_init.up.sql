-- The control plane's first schema. Timestamps are UTC text of fixed width
-- (2006-01-02T15:04:05.000000000Z) so that they sort as they compare; JSON
-- columns hold objects or arrays of strings. Tables are STRICT: a value of
-- the wrong type is an error instead of being stored as is.

CREATE TABLE users (
	id         TEXT PRIMARY KEY CHECK (id <> ''),
	email      TEXT NOT NULL,
	name       TEXT NOT NULL,
	admin      INTEGER NOT NULL CHECK (admin IN (0, 1)),
	created_at TEXT NOT NULL
) STRICT;

-- An email signs in one user; the admin made by the first start may have none.
CREATE UNIQUE INDEX users_email ON users (email) WHERE email <> '';

CREATE TABLE teams (
	id         TEXT PRIMARY KEY CHECK (id <> ''),
	name       TEXT NOT NULL,
	created_at TEXT NOT NULL
) STRICT;

CREATE TABLE team_members (
	team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role    TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
	PRIMARY KEY (team_id, user_id)
) STRICT;

CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY CHECK (id <> ''),
	team_id      TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	prefix       TEXT NOT NULL,
	hash         TEXT NOT NULL UNIQUE,
	created_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
	created_at   TEXT NOT NULL,
	last_used_at TEXT
) STRICT;

CREATE INDEX api_keys_team ON api_keys (team_id, created_at, id);

CREATE TABLE hosts (
	id         TEXT PRIMARY KEY CHECK (id <> ''),
	address    TEXT NOT NULL,
	last_seen  TEXT NOT NULL,
	created_at TEXT NOT NULL
) STRICT;

-- host_id is not a foreign key: hosts may come from the configuration
-- rather than from UpsertHost, and a capsule outlives its host's row.
CREATE TABLE capsules (
	id           TEXT PRIMARY KEY CHECK (id <> ''),
	team_id      TEXT NOT NULL REFERENCES teams (id),
	template     TEXT NOT NULL,
	status       TEXT NOT NULL CHECK (status <> ''),
	error        TEXT NOT NULL,
	vcpus        INTEGER NOT NULL,
	memory_mb    INTEGER NOT NULL,
	disk_mb      INTEGER NOT NULL,
	metadata     TEXT NOT NULL CHECK (json_type(metadata) = 'object'),
	internet     INTEGER NOT NULL CHECK (internet IN (0, 1)),
	allow_out    TEXT NOT NULL CHECK (json_type(allow_out) = 'array'),
	deny_out     TEXT NOT NULL CHECK (json_type(deny_out) = 'array'),
	host_id      TEXT NOT NULL,
	envd_version TEXT NOT NULL,
	env_vars     TEXT NOT NULL CHECK (json_type(env_vars) = 'object'),
	access_token TEXT NOT NULL,
	created_at   TEXT NOT NULL,
	updated_at   TEXT NOT NULL,
	started_at   TEXT,
	expires_at   TEXT,
	stopped_at   TEXT
) STRICT;

-- ListCapsules walks (created_at, id) backwards, across all teams (the
-- reconciler) or within one (the API).
CREATE INDEX capsules_created ON capsules (created_at, id);
CREATE INDEX capsules_team_created ON capsules (team_id, created_at, id);
CREATE INDEX capsules_host ON capsules (host_id, status);
CREATE INDEX capsules_status ON capsules (status);

-- seq orders a capsule's events even when two share a timestamp.
CREATE TABLE capsule_events (
	seq         INTEGER PRIMARY KEY,
	capsule_id  TEXT NOT NULL REFERENCES capsules (id) ON DELETE CASCADE,
	from_status TEXT NOT NULL,
	to_status   TEXT NOT NULL,
	reason      TEXT NOT NULL,
	at          TEXT NOT NULL
) STRICT;

CREATE INDEX capsule_events_capsule ON capsule_events (capsule_id, seq);
