-- The platform admins' team actions: a team's BYOC flag (it may bring its
-- own hosts) and its soft deletion (deleted_at set: no key, session or
-- member acts in it any more; the row stays for the admins' list and the
-- audit log's references).
ALTER TABLE teams ADD COLUMN byoc BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE teams ADD COLUMN deleted_at TIMESTAMPTZ;
