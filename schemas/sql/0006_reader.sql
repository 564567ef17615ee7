-- A read-only group role for dashboards and analysts: Grafana's datasource logs in as a member
-- of it, so a board (or anyone holding its password) can read the store but never change it.
--
-- The role belongs to the server, the grants to this schema: every migrated schema grants
-- SELECT on its tables, views and aggregates, now and (through default privileges of the role
-- that migrates) on those later migrations add. A login user is made by the operator:
--     CREATE ROLE grafana_reader LOGIN PASSWORD '...' IN ROLE tutorstream_reader;
--
-- A migrating role without CREATEROLE cannot make the group role: an administrator creates it
-- beforehand (CREATE ROLE tutorstream_reader NOLOGIN) and this migration only grants. Without
-- it the migration warns and grants nothing, rather than leaving the store unmigrated.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tutorstream_reader') THEN
        BEGIN
            CREATE ROLE tutorstream_reader NOLOGIN;
        EXCEPTION
            -- another schema's migration created it between the check and the CREATE
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'role tutorstream_reader is missing and % cannot create it; '
                    'boards need it: create it (NOLOGIN) and grant SELECT on schema % to it',
                    current_user, current_schema();
                RETURN;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO tutorstream_reader', current_schema());
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO tutorstream_reader',
                   current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES '
                   'TO tutorstream_reader', current_schema());
END
$$;
