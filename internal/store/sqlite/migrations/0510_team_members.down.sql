DROP TABLE invitations;
DROP TABLE team_settings;
