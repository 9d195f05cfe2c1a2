-- A team's own limits on its live capsules (every status but stopped and
-- error), which override the operator's defaults column by column: NULL
-- means the default, 0 means no limit. No row means every default.
CREATE TABLE team_limits (
	team_id   TEXT COLLATE "C" PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
	capsules  INTEGER CHECK (capsules >= 0),
	vcpus     INTEGER CHECK (vcpus >= 0),
	memory_mb INTEGER CHECK (memory_mb >= 0)
);

-- CreateCapsuleWithin sums a team's live capsules on every create.
CREATE INDEX capsules_team_status ON capsules (team_id, status);
