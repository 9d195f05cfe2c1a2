ALTER TABLE capsules DROP COLUMN traffic_access_token;
