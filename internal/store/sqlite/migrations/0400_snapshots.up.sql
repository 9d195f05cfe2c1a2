-- Snapshots (issue 12): a capsule's processes, memory and files kept on the
-- host that took it. name is "name:tag" or '' (unnamed); template_name is
-- the team's template made from the snapshot, or ''. size_bytes is what the
-- snapshot takes on its host (while creating: the most it can take), which
-- counts in the team's disk. env_vars are the source's, a secret.
CREATE TABLE snapshots (
	id            TEXT PRIMARY KEY CHECK (id <> ''),
	team_id       TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
	name          TEXT NOT NULL,
	capsule_id    TEXT NOT NULL,
	host_id       TEXT NOT NULL,
	status        TEXT NOT NULL CHECK (status IN ('creating', 'ready', 'deleting', 'error')),
	error         TEXT NOT NULL,
	template      TEXT NOT NULL,
	vcpus         INTEGER NOT NULL,
	memory_mb     INTEGER NOT NULL,
	disk_mb       INTEGER NOT NULL,
	internet      INTEGER NOT NULL CHECK (internet IN (0, 1)),
	allow_out     TEXT NOT NULL CHECK (json_type(allow_out) = 'array'),
	deny_out      TEXT NOT NULL CHECK (json_type(deny_out) = 'array'),
	env_vars      TEXT NOT NULL CHECK (json_type(env_vars) = 'object'),
	size_bytes    INTEGER NOT NULL CHECK (size_bytes >= 0),
	envd_version  TEXT NOT NULL,
	template_name TEXT NOT NULL,
	created_at    TEXT NOT NULL,
	updated_at    TEXT NOT NULL
) STRICT;

-- ListSnapshots walks (created_at, id) backwards within a team.
CREATE INDEX snapshots_team_created ON snapshots (team_id, created_at, id);
CREATE INDEX snapshots_host ON snapshots (host_id, status);
CREATE UNIQUE INDEX snapshots_team_name ON snapshots (team_id, name) WHERE name <> '';
CREATE UNIQUE INDEX snapshots_team_template ON snapshots (team_id, template_name) WHERE template_name <> '';

-- The snapshot a capsule started from, '' for none.
ALTER TABLE capsules ADD COLUMN snapshot_id TEXT NOT NULL DEFAULT '';

-- A team's own limits on its snapshots and on the disk of its live
-- capsules and snapshots together (NULL: the default, 0: no limit).
ALTER TABLE team_limits ADD COLUMN snapshots INTEGER CHECK (snapshots >= 0);
ALTER TABLE team_limits ADD COLUMN disk_mb INTEGER CHECK (disk_mb >= 0);
