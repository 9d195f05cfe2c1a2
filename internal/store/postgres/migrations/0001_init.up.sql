-- The control plane's first schema, in PostgreSQL's dialect. Timestamps are
-- TIMESTAMPTZ (microsecond precision); JSONB columns hold objects or arrays
-- of strings. The CHECK constraints are SQLite's, so that both stores refuse
-- the same rows. IDs collate "C": they sort by bytes, as in SQLite and Go,
-- whatever the database's locale, so that list orders and cursors agree.

CREATE TABLE users (
	id         TEXT COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	email      TEXT NOT NULL,
	name       TEXT NOT NULL,
	admin      BOOLEAN NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);

-- An email signs in one user; the admin made by the first start may have none.
CREATE UNIQUE INDEX users_email ON users (email) WHERE email <> '';

CREATE TABLE teams (
	id         TEXT COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	name       TEXT NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE team_members (
	team_id TEXT COLLATE "C" NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role    TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
	PRIMARY KEY (team_id, user_id)
);

CREATE INDEX team_members_user ON team_members (user_id);

CREATE TABLE api_keys (
	id           TEXT COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	team_id      TEXT COLLATE "C" NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	prefix       TEXT NOT NULL,
	hash         TEXT NOT NULL UNIQUE,
	created_by   TEXT COLLATE "C" REFERENCES users (id) ON DELETE SET NULL,
	created_at   TIMESTAMPTZ NOT NULL,
	last_used_at TIMESTAMPTZ
);

CREATE INDEX api_keys_team ON api_keys (team_id, created_at, id);

CREATE TABLE hosts (
	id         TEXT COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	address    TEXT NOT NULL,
	last_seen  TIMESTAMPTZ NOT NULL,
	created_at TIMESTAMPTZ NOT NULL
);

-- host_id is not a foreign key: hosts may come from the configuration
-- rather than from UpsertHost, and a capsule outlives its host's row.
CREATE TABLE capsules (
	id           TEXT COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	team_id      TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
	template     TEXT NOT NULL,
	status       TEXT NOT NULL CHECK (status <> ''),
	error        TEXT NOT NULL,
	vcpus        INTEGER NOT NULL,
	memory_mb    INTEGER NOT NULL,
	disk_mb      INTEGER NOT NULL,
	metadata     JSONB NOT NULL CHECK (jsonb_typeof(metadata) = 'object'),
	internet     BOOLEAN NOT NULL,
	allow_out    JSONB NOT NULL CHECK (jsonb_typeof(allow_out) = 'array'),
	deny_out     JSONB NOT NULL CHECK (jsonb_typeof(deny_out) = 'array'),
	host_id      TEXT NOT NULL,
	envd_version TEXT NOT NULL,
	env_vars     JSONB NOT NULL CHECK (jsonb_typeof(env_vars) = 'object'),
	access_token TEXT NOT NULL,
	created_at   TIMESTAMPTZ NOT NULL,
	updated_at   TIMESTAMPTZ NOT NULL,
	started_at   TIMESTAMPTZ,
	expires_at   TIMESTAMPTZ,
	stopped_at   TIMESTAMPTZ
);

-- ListCapsules walks (created_at, id) backwards, across all teams (the
-- reconciler) or within one (the API); the metadata filter is a JSONB
-- containment (@>), which the GIN index serves.
CREATE INDEX capsules_created ON capsules (created_at, id);
CREATE INDEX capsules_team_created ON capsules (team_id, created_at, id);
CREATE INDEX capsules_host ON capsules (host_id, status);
CREATE INDEX capsules_status ON capsules (status);
CREATE INDEX capsules_metadata ON capsules USING GIN (metadata jsonb_path_ops);

-- seq orders a capsule's events even when two share a timestamp.
CREATE TABLE capsule_events (
	seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	capsule_id  TEXT COLLATE "C" NOT NULL REFERENCES capsules (id) ON DELETE CASCADE,
	from_status TEXT NOT NULL,
	to_status   TEXT NOT NULL,
	reason      TEXT NOT NULL,
	at          TIMESTAMPTZ NOT NULL
);

CREATE INDEX capsule_events_capsule ON capsule_events (capsule_id, seq);
