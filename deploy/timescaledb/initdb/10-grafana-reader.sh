#!/usr/bin/env bash
# Runs once, when the TimescaleDB container initialises an empty data directory: creates the
# read-only group role the migrations grant to (schemas/sql/0006_reader.sql) and, when
# GRAFANA_READER_PASSWORD is set, Grafana's login as a member of it. Safe to run again: an
# existing role is kept and the login's password is set anew.
set -euo pipefail
psql --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --no-psqlrc --set ON_ERROR_STOP=1 \
    --set reader_password="${GRAFANA_READER_PASSWORD:-}" <<'SQL'
SELECT 'CREATE ROLE tutorstream_reader NOLOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tutorstream_reader') \gexec
SELECT format(
    CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader')
         THEN 'ALTER ROLE grafana_reader LOGIN PASSWORD %L'
         ELSE 'CREATE ROLE grafana_reader LOGIN PASSWORD %L IN ROLE tutorstream_reader' END,
    :'reader_password')
WHERE :'reader_password' <> '' \gexec
SQL
