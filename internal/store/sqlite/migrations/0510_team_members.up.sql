-- A team's own settings. No row means the defaults (members may not mint
-- API keys).
CREATE TABLE team_settings (
	team_id           TEXT PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
	members_mint_keys INTEGER NOT NULL CHECK (members_mint_keys IN (0, 1))
) STRICT;

-- An invitation to join a team, by email; accepted once, by the account
-- of that email. The owner's role is never given by invitation.
CREATE TABLE invitations (
	id          TEXT PRIMARY KEY CHECK (id <> ''),
	team_id     TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	email       TEXT NOT NULL,
	role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
	invited_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
	created_at  TEXT NOT NULL,
	expires_at  TEXT NOT NULL,
	accepted_at TEXT,
	accepted_by TEXT REFERENCES users (id) ON DELETE SET NULL
) STRICT;

CREATE INDEX invitations_team ON invitations (team_id, created_at, id);
