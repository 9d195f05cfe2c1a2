DROP INDEX capsules_team_status;
DROP TABLE team_limits;
