ALTER TABLE snapshots DROP COLUMN pool_size;
