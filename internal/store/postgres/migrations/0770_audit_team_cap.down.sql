DROP INDEX audit_entries_scope_team;
