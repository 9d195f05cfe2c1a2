-- A team's own settings. No row means the defaults (members may not mint
-- API keys).
CREATE TABLE team_settings (
	team_id           TEXT COLLATE "C" PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
	members_mint_keys BOOLEAN NOT NULL
);

-- An invitation to join a team, by email; accepted once, by the account
-- of that email. The owner's role is never given by invitation.
CREATE TABLE invitations (
	id          TEXT COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	team_id     TEXT COLLATE "C" NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	email       TEXT NOT NULL,
	role        TEXT NOT NULL CHECK (role IN ('admin', 'member')),
	invited_by  TEXT COLLATE "C" REFERENCES users (id) ON DELETE SET NULL,
	created_at  TIMESTAMPTZ NOT NULL,
	expires_at  TIMESTAMPTZ NOT NULL,
	accepted_at TIMESTAMPTZ,
	accepted_by TEXT COLLATE "C" REFERENCES users (id) ON DELETE SET NULL
);

CREATE INDEX invitations_team ON invitations (team_id, created_at, id);
