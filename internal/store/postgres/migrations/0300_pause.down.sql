ALTER TABLE capsules DROP COLUMN auto_resume;
ALTER TABLE capsules DROP COLUMN auto_pause_memory;
ALTER TABLE capsules DROP COLUMN auto_pause;
ALTER TABLE capsules DROP COLUMN remaining_ms;
ALTER TABLE capsules DROP COLUMN paused_memory;
ALTER TABLE capsules DROP COLUMN paused_at;
ALTER TABLE capsules DROP COLUMN generation;
