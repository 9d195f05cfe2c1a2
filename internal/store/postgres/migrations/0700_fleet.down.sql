DROP TABLE leases;
DROP TABLE join_tokens;
ALTER TABLE hosts DROP COLUMN capacity;
ALTER TABLE hosts DROP COLUMN unreachable;
ALTER TABLE hosts DROP COLUMN state;
ALTER TABLE hosts DROP COLUMN agent_token;
ALTER TABLE hosts DROP COLUMN name;
