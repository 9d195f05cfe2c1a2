-- Children before the tables they reference: dropping a referenced table
-- first would fail while the foreign keys that point at it remain.
DROP TABLE capsule_events;
DROP TABLE capsules;
DROP TABLE hosts;
DROP TABLE api_keys;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE users;
