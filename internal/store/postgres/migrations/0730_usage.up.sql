-- Usage accounting (issue 14). usage_samples has a row per running capsule
-- and sampling pass, integers only (times in Unix seconds, sizes in MiB),
-- so that a row stays a few dozen bytes; rows past the retention are
-- deleted. No foreign keys: usage is a record that outlives its capsules,
-- and a sample must not fail because its capsule's row went.
--
-- seconds is the time the sample accounts for (since the previous pass);
-- vcpus, memory_mb and disk_mb are the capsule's allocation, cpu_ms,
-- memory_used_mb and disk_used_mb what it measured.
CREATE TABLE usage_samples (
	team_id        TEXT COLLATE "C" NOT NULL,
	at             BIGINT NOT NULL,
	capsule_id     TEXT COLLATE "C" NOT NULL,
	seconds        INTEGER NOT NULL CHECK (seconds >= 0),
	vcpus          INTEGER NOT NULL,
	memory_mb      BIGINT NOT NULL,
	disk_mb        BIGINT NOT NULL,
	cpu_ms         BIGINT NOT NULL,
	memory_used_mb BIGINT NOT NULL,
	disk_used_mb   BIGINT NOT NULL,
	PRIMARY KEY (team_id, at, capsule_id)
);

-- The rollup and the retention read by time across teams.
CREATE INDEX usage_samples_at ON usage_samples (at);

-- A team's usage of one completed UTC day (YYYY-MM-DD), computed from its
-- samples by the hourly rollup; rolling a day again gives the same row.
CREATE TABLE usage_daily (
	team_id                TEXT COLLATE "C" NOT NULL,
	day                    TEXT COLLATE "C" NOT NULL CHECK (length(day) = 10),
	capsules               INTEGER NOT NULL,
	vcpu_seconds           BIGINT NOT NULL,
	memory_mb_seconds      BIGINT NOT NULL,
	disk_mb_seconds        BIGINT NOT NULL,
	cpu_ms                 BIGINT NOT NULL,
	memory_used_mb_seconds BIGINT NOT NULL,
	disk_used_mb_seconds   BIGINT NOT NULL,
	PRIMARY KEY (team_id, day)
);

-- A team's usage of one hour (Unix seconds / 3600), computed from its
-- samples once the hour is over, so that today's usage, computed at query
-- time, sums today's hours and only the samples since the last hour
-- rolled. Deleted with the samples.
CREATE TABLE usage_hourly (
	team_id                TEXT COLLATE "C" NOT NULL,
	hour                   BIGINT NOT NULL,
	vcpu_seconds           BIGINT NOT NULL,
	memory_mb_seconds      BIGINT NOT NULL,
	disk_mb_seconds        BIGINT NOT NULL,
	cpu_ms                 BIGINT NOT NULL,
	memory_used_mb_seconds BIGINT NOT NULL,
	disk_used_mb_seconds   BIGINT NOT NULL,
	PRIMARY KEY (team_id, hour)
);

-- The capsules that ran on a day (Unix seconds / 86400), one row each,
-- written with the samples: a day's count of capsules without counting
-- its samples. Deleted with the samples.
CREATE TABLE usage_capsule_days (
	team_id    TEXT COLLATE "C" NOT NULL,
	day        BIGINT NOT NULL,
	capsule_id TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (team_id, day, capsule_id)
);

-- How far the rollups went: the last day ('day', Unix days) and the last
-- hour ('hour', Unix hours) rolled.
CREATE TABLE usage_rollup (
	name TEXT COLLATE "C" PRIMARY KEY CHECK (name IN ('day', 'hour')),
	last BIGINT NOT NULL
);
