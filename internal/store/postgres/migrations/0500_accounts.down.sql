DROP TABLE installation;
DROP TABLE sessions;
DROP TABLE accounts;
