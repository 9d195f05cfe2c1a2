-- Pause and resume (issue 11). generation counts a capsule's status
-- changes, so that a late event cannot re-apply an old change after the
-- status has cycled; existing rows start at 1, as new ones do.
ALTER TABLE capsules ADD COLUMN generation BIGINT NOT NULL DEFAULT 1;
-- When the capsule was last paused, whether that pause kept the memory,
-- and the lifetime it had left then (milliseconds), frozen while paused.
ALTER TABLE capsules ADD COLUMN paused_at TIMESTAMPTZ;
ALTER TABLE capsules ADD COLUMN paused_memory BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE capsules ADD COLUMN remaining_ms BIGINT NOT NULL DEFAULT 0;
-- Create options: pause at the timeout instead of destroying (with the
-- memory unless auto_pause_memory is false), and resume on routed traffic.
ALTER TABLE capsules ADD COLUMN auto_pause BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE capsules ADD COLUMN auto_pause_memory BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE capsules ADD COLUMN auto_resume BOOLEAN NOT NULL DEFAULT FALSE;
