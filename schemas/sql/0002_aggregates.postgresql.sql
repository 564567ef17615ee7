-- Plain PostgreSQL: the continuous aggregates rebuilt from parts, under the same names and
-- columns, so the API and the boards run the same queries in both modes.
--
-- Each aggregate NAME is a view over
--   NAME_materialized  rows of whole buckets before the aggregate's watermark, and
--   NAME_between()     the same aggregation computed from raw rows since the watermark
-- which is TimescaleDB's real-time aggregation. refresh_aggregates() (called by the pipeline)
-- recomputes the buckets of each refresh window and moves the watermark, incrementally, where a
-- REFRESH MATERIALIZED VIEW would recompute a year of history every time. Windows and bucket
-- widths match the TimescaleDB policies of this version.
--
-- The NAME_between() functions have SQL-standard bodies: their tables are bound when they are
-- created (no search_path surprises) and the planner inlines them, so a view query's filters on
-- class_id reach the raw tables' indexes.

CREATE TABLE aggregate_refresh (
    view_name     text        PRIMARY KEY,
    bucket_width  interval    NOT NULL,
    start_offset  interval    NOT NULL,
    end_offset    interval    NOT NULL,
    watermark     timestamptz NOT NULL DEFAULT '-infinity',
    refreshed_at  timestamptz
);
COMMENT ON TABLE aggregate_refresh IS
    'Refresh window and watermark of each aggregate view: buckets before watermark are '
    'materialised, later ones are computed from raw rows at query time.';
INSERT INTO aggregate_refresh (view_name, bucket_width, start_offset, end_offset) VALUES
    ('class_states_1m', INTERVAL '1 minute', INTERVAL '3 days', INTERVAL '1 minute'),
    ('class_interventions_1m', INTERVAL '1 minute', INTERVAL '3 days', INTERVAL '1 minute'),
    ('class_skill_mastery_1h', INTERVAL '1 hour', INTERVAL '7 days', INTERVAL '1 hour');

CREATE FUNCTION aggregate_watermark(p_view text) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT watermark FROM aggregate_refresh WHERE view_name = p_view;
END;

-- Buckets are aligned like time_bucket()'s: on 2000-01-01 UTC.

CREATE TABLE class_states_1m_materialized (
    bucket           timestamptz      NOT NULL,
    class_id         text,
    state            text             NOT NULL,
    predictions      bigint           NOT NULL,
    mean_confidence  double precision
);
CREATE INDEX class_states_1m_materialized_class_idx
    ON class_states_1m_materialized (class_id, bucket DESC);
CREATE INDEX class_states_1m_materialized_bucket_idx
    ON class_states_1m_materialized (bucket);

CREATE FUNCTION class_states_1m_between(p_from timestamptz, p_to timestamptz)
    RETURNS TABLE (bucket timestamptz, class_id text, state text, predictions bigint,
                   mean_confidence double precision)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT date_bin(INTERVAL '1 minute', p.time, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
           p.class_id, p.state, count(*), avg(p.confidence)
    FROM predictions p
    WHERE p.time >= p_from AND p.time < p_to
    GROUP BY 1, 2, 3;
END;

CREATE VIEW class_states_1m AS
SELECT m.bucket, m.class_id, m.state, m.predictions, m.mean_confidence
FROM class_states_1m_materialized m
WHERE m.bucket < aggregate_watermark('class_states_1m')
UNION ALL
SELECT r.bucket, r.class_id, r.state, r.predictions, r.mean_confidence
FROM class_states_1m_between(aggregate_watermark('class_states_1m'), 'infinity') r;

CREATE TABLE class_interventions_1m_materialized (
    bucket         timestamptz NOT NULL,
    class_id       text,
    state          text        NOT NULL,
    status         text        NOT NULL,
    interventions  bigint      NOT NULL
);
CREATE INDEX class_interventions_1m_materialized_class_idx
    ON class_interventions_1m_materialized (class_id, bucket DESC);
CREATE INDEX class_interventions_1m_materialized_bucket_idx
    ON class_interventions_1m_materialized (bucket);

CREATE FUNCTION class_interventions_1m_between(p_from timestamptz, p_to timestamptz)
    RETURNS TABLE (bucket timestamptz, class_id text, state text, status text,
                   interventions bigint)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT date_bin(INTERVAL '1 minute', i.time, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
           i.class_id, i.state, i.status, count(*)
    FROM interventions i
    WHERE i.time >= p_from AND i.time < p_to
    GROUP BY 1, 2, 3, 4;
END;

CREATE VIEW class_interventions_1m AS
SELECT m.bucket, m.class_id, m.state, m.status, m.interventions
FROM class_interventions_1m_materialized m
WHERE m.bucket < aggregate_watermark('class_interventions_1m')
UNION ALL
SELECT r.bucket, r.class_id, r.state, r.status, r.interventions
FROM class_interventions_1m_between(aggregate_watermark('class_interventions_1m'), 'infinity') r;

CREATE TABLE class_skill_mastery_1h_materialized (
    bucket        timestamptz      NOT NULL,
    class_id      text,
    skill_id      text             NOT NULL,
    estimates     bigint           NOT NULL,
    mean_mastery  double precision
);
CREATE INDEX class_skill_mastery_1h_materialized_class_idx
    ON class_skill_mastery_1h_materialized (class_id, skill_id, bucket DESC);
CREATE INDEX class_skill_mastery_1h_materialized_bucket_idx
    ON class_skill_mastery_1h_materialized (bucket);

CREATE FUNCTION class_skill_mastery_1h_between(p_from timestamptz, p_to timestamptz)
    RETURNS TABLE (bucket timestamptz, class_id text, skill_id text, estimates bigint,
                   mean_mastery double precision)
    LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT date_bin(INTERVAL '1 hour', s.time, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
           s.class_id, s.skill_id, count(*), avg(s.mastery)
    FROM skill_mastery s
    WHERE s.time >= p_from AND s.time < p_to
    GROUP BY 1, 2, 3;
END;

CREATE VIEW class_skill_mastery_1h AS
SELECT m.bucket, m.class_id, m.skill_id, m.estimates, m.mean_mastery
FROM class_skill_mastery_1h_materialized m
WHERE m.bucket < aggregate_watermark('class_skill_mastery_1h')
UNION ALL
SELECT r.bucket, r.class_id, r.skill_id, r.estimates, r.mean_mastery
FROM class_skill_mastery_1h_between(aggregate_watermark('class_skill_mastery_1h'), 'infinity') r;

-- Recomputes every aggregate's buckets from the older of its watermark and its refresh window's
-- start up to its window's end, then moves the watermark there; the first call materialises all
-- history. Rows are locked per aggregate, so concurrent callers refresh one after the other.
CREATE FUNCTION refresh_aggregates(p_now timestamptz DEFAULT now())
    RETURNS TABLE (aggregate_name text, window_start timestamptz, window_end timestamptz,
                   refreshed_rows bigint)
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
DECLARE
    agg aggregate_refresh%ROWTYPE;
    origin CONSTANT timestamptz := TIMESTAMPTZ '2000-01-01 00:00:00+00';
BEGIN
    FOR agg IN
        SELECT * FROM aggregate_refresh ar ORDER BY ar.view_name FOR UPDATE
    LOOP
        window_end := date_bin(agg.bucket_width, p_now - agg.end_offset, origin);
        window_start := least(agg.watermark,
                              date_bin(agg.bucket_width, p_now - agg.start_offset, origin));
        CONTINUE WHEN window_start >= window_end;
        EXECUTE format('DELETE FROM %I WHERE bucket >= $1 AND bucket < $2',
                       agg.view_name || '_materialized')
            USING window_start, window_end;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I($1, $2)',
                       agg.view_name || '_materialized', agg.view_name || '_between')
            USING window_start, window_end;
        GET DIAGNOSTICS refreshed_rows = ROW_COUNT;
        UPDATE aggregate_refresh ar
            SET watermark = greatest(ar.watermark, window_end), refreshed_at = p_now
            WHERE ar.view_name = agg.view_name;
        aggregate_name := agg.view_name;
        RETURN NEXT;
    END LOOP;
END
$$;
