-- The warm pool of a template made from a snapshot: how many sandboxes
-- restored from it its host keeps ready (0: none).
ALTER TABLE snapshots ADD COLUMN pool_size INTEGER NOT NULL DEFAULT 0;
