-- Accounts: the sign-in of a user (a user made by the bootstrap has none),
-- their sessions, and the installation's one row that remembers which
-- account activated first (it became platform admin).
CREATE TABLE accounts (
	user_id          TEXT COLLATE "C" PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
	password_hash    TEXT NOT NULL,
	-- password_version grows at each password change: a reset link names
	-- the version it may replace, so it works once.
	password_version INTEGER NOT NULL,
	status           TEXT NOT NULL CHECK (status IN ('active', 'disabled', 'deleted')),
	verified_at      TIMESTAMPTZ,
	deleted_at       TIMESTAMPTZ,
	created_at       TIMESTAMPTZ NOT NULL,
	CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);

-- The purge walks deleted accounts by when they were deleted.
CREATE INDEX accounts_deleted ON accounts (deleted_at) WHERE deleted_at IS NOT NULL;

-- A session's access and refresh tokens are kept as SHA-256 hashes only.
CREATE TABLE sessions (
	id                 TEXT COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	user_id            TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	team_id            TEXT COLLATE "C" NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	token_hash         TEXT NOT NULL UNIQUE,
	refresh_hash       TEXT NOT NULL UNIQUE,
	expires_at         TIMESTAMPTZ NOT NULL,
	refresh_expires_at TIMESTAMPTZ NOT NULL,
	created_at         TIMESTAMPTZ NOT NULL
);

CREATE INDEX sessions_user ON sessions (user_id, created_at);

-- One row. first_user is not a foreign key: a purged first user must not
-- let the next activation become admin.
CREATE TABLE installation (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	first_user TEXT
);

INSERT INTO installation (id, first_user) VALUES (1, NULL);
