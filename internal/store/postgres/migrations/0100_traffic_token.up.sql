-- A capsule whose ports are private: traffic routed to it without an API
-- key (E2B's routing headers, host names) must carry this token. '' means
-- public traffic, the default.
ALTER TABLE capsules ADD COLUMN traffic_access_token TEXT NOT NULL DEFAULT '';
