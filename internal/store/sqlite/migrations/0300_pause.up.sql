-- Pause and resume (issue 11). generation counts a capsule's status
-- changes, so that a late event cannot re-apply an old change after the
-- status has cycled; existing rows start at 1, as new ones do.
ALTER TABLE capsules ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;
-- When the capsule was last paused, whether that pause kept the memory,
-- and the lifetime it had left then (milliseconds), frozen while paused.
ALTER TABLE capsules ADD COLUMN paused_at TEXT;
ALTER TABLE capsules ADD COLUMN paused_memory INTEGER NOT NULL DEFAULT 0;
ALTER TABLE capsules ADD COLUMN remaining_ms INTEGER NOT NULL DEFAULT 0;
-- Create options: pause at the timeout instead of destroying (with the
-- memory unless auto_pause_memory is 0), and resume on routed traffic.
ALTER TABLE capsules ADD COLUMN auto_pause INTEGER NOT NULL DEFAULT 0;
ALTER TABLE capsules ADD COLUMN auto_pause_memory INTEGER NOT NULL DEFAULT 1;
ALTER TABLE capsules ADD COLUMN auto_resume INTEGER NOT NULL DEFAULT 0;
