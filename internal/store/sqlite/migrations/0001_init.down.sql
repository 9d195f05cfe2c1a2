-- Children before the tables they reference: with foreign_keys on, dropping
-- a referenced table first would fail while referencing rows remain.
DROP TABLE capsule_events;
DROP TABLE capsules;
DROP TABLE hosts;
DROP TABLE api_keys;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE users;
