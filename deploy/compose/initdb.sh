#!/usr/bin/env bash
# First start of the postgres:15 container (docker-entrypoint-initdb.d): the owner, service,
# auditor and administrator login roles and the database, as deploy/install-debian.sh makes them on a server. The
# group roles are created here already (migration 0001 creates them only if missing) so that the
# login roles can join them before the migrations run.
set -euo pipefail
# The passwords are read from the environment (\getenv), never put on psql's command line.
psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\getenv owner_pw OWNER_DB_PASSWORD
\getenv app_pw SERVICE_DB_PASSWORD
\getenv audit_pw AUDITOR_DB_PASSWORD
\getenv admin_pw ADMIN_DB_PASSWORD
CREATE ROLE idservice_owner LOGIN CREATEROLE PASSWORD :'owner_pw';
CREATE ROLE idservice_app LOGIN PASSWORD :'app_pw';
CREATE ROLE idservice_audit LOGIN PASSWORD :'audit_pw';
CREATE ROLE idservice_admin LOGIN PASSWORD :'admin_pw';
CREATE ROLE idservice_service NOLOGIN;
CREATE ROLE idservice_auditor NOLOGIN;
CREATE ROLE idservice_administrator NOLOGIN;
GRANT idservice_service TO idservice_owner WITH ADMIN OPTION;
GRANT idservice_auditor TO idservice_owner WITH ADMIN OPTION;
GRANT idservice_administrator TO idservice_owner WITH ADMIN OPTION;
GRANT idservice_service TO idservice_app;
GRANT idservice_auditor TO idservice_audit;
GRANT idservice_administrator TO idservice_admin;
CREATE DATABASE idservice OWNER idservice_owner ENCODING 'UTF8';
SQL
