ALTER TABLE team_limits DROP COLUMN disk_mb;
ALTER TABLE team_limits DROP COLUMN snapshots;
ALTER TABLE capsules DROP COLUMN snapshot_id;
DROP TABLE snapshots;
