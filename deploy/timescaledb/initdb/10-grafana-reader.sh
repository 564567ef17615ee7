#!/usr/bin/env bash
# Runs once, when the TimescaleDB container initialises an empty data directory: creates the
# read-only role the migrations grant to (schemas/sql/0006_reader.sql) and, when
# GRAFANA_READER_PASSWORD is set, Grafana's login as a member of it.
set -euo pipefail
psql --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --set ON_ERROR_STOP=1 \
    --set reader_password="${GRAFANA_READER_PASSWORD:-}" <<'SQL'
CREATE ROLE tutorstream_reader NOLOGIN;
SELECT :'reader_password' <> '' AS has_reader \gset
\if :has_reader
CREATE ROLE grafana_reader LOGIN PASSWORD :'reader_password' IN ROLE tutorstream_reader;
\endif
SQL
