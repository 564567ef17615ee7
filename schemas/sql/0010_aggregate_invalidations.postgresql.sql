-- Plain PostgreSQL: the aggregates' refresh recomputes what changed, as TimescaleDB's continuous
-- aggregates do with their invalidation log, instead of every bucket of the refresh window.
--
-- Before, each refresh recomputed the whole window (three days of predictions and
-- interventions, seven of mastery) every maintenance interval: work that grew with the data
-- and, at a few thousand events a second, took the database's CPU away from the writers for
-- longer than the interval itself. Now writes note the time range they touched in
-- aggregate_invalidations (statement triggers, insert-only, so writers never wait on each other)
-- and a refresh recomputes the buckets from its watermark on plus the ranges noted below it,
-- within the window. Rows older than the window's start stay as they were, as in TimescaleDB.

CREATE TABLE aggregate_invalidations (
    view_name  text        NOT NULL,
    lo         timestamptz NOT NULL,
    hi         timestamptz NOT NULL
);
COMMENT ON TABLE aggregate_invalidations IS
    'Time ranges of raw rows written since the last refresh, per aggregate view: the refresh '
    'recomputes their buckets below the watermark and clears them.';

CREATE FUNCTION invalidate_aggregates() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO aggregate_invalidations (view_name, lo, hi)
    SELECT v.view_name, r.lo, r.hi
    FROM (SELECT min(c.time) AS lo, max(c.time) AS hi FROM changed c) r,
         unnest(TG_ARGV) AS v(view_name)
    WHERE r.lo IS NOT NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER predictions_invalidate_aggregates
    AFTER INSERT ON predictions REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION invalidate_aggregates('class_states_1m');
CREATE TRIGGER interventions_insert_invalidates_aggregates
    AFTER INSERT ON interventions REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION invalidate_aggregates('class_interventions_1m');
-- a tutor's action changes an intervention's status, which the aggregate counts by
CREATE TRIGGER interventions_update_invalidates_aggregates
    AFTER UPDATE ON interventions REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION invalidate_aggregates('class_interventions_1m');
CREATE TRIGGER skill_mastery_invalidate_aggregates
    AFTER INSERT ON skill_mastery REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION invalidate_aggregates('class_skill_mastery_1h');

-- Brings a raw table's time index up to date for the pages written since the last call: a
-- BRIN range not yet summarised is read in full by every query on time, and the tables'
-- ranges are otherwise summarised only by autovacuum. A role that does not own the index goes
-- on without it, reading more.
CREATE FUNCTION summarize_time_index(p_table text) RETURNS void
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM brin_summarize_new_values(format('%I', p_table || '_time_brin')::regclass);
EXCEPTION WHEN insufficient_privilege THEN
    NULL;
END
$$;

-- Recomputes each aggregate's buckets from the earlier of its watermark and the first bucket
-- written to below it since the last refresh (not before the window's start) up to the
-- window's end, then moves the watermark there and clears the view's invalidations. The first
-- call (watermark -infinity) materialises all history, as before. Rows are locked per aggregate,
-- so concurrent callers refresh one after the other.
CREATE OR REPLACE FUNCTION refresh_aggregates(p_now timestamptz DEFAULT now())
    RETURNS TABLE (aggregate_name text, window_start timestamptz, window_end timestamptz,
                   refreshed_rows bigint)
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
DECLARE
    agg aggregate_refresh%ROWTYPE;
    origin CONSTANT timestamptz := TIMESTAMPTZ '2000-01-01 00:00:00+00';
    changed_from timestamptz;
BEGIN
    FOR agg IN
        SELECT * FROM aggregate_refresh ar ORDER BY ar.view_name FOR UPDATE
    LOOP
        window_end := date_bin(agg.bucket_width, p_now - agg.end_offset, origin);
        -- ranges at or after the watermark are read raw until the watermark passes them
        WITH taken AS (
            DELETE FROM aggregate_invalidations ai
            WHERE ai.view_name = agg.view_name
            RETURNING ai.lo
        )
        SELECT min(t.lo) INTO changed_from FROM taken t WHERE t.lo < agg.watermark;
        window_start := agg.watermark;
        IF changed_from IS NOT NULL THEN
            window_start := least(
                window_start,
                greatest(date_bin(agg.bucket_width, changed_from, origin),
                         date_bin(agg.bucket_width, p_now - agg.start_offset, origin)));
        END IF;
        CONTINUE WHEN window_start >= window_end;
        -- so the recompute reads only the ranges of its raw table it needs
        PERFORM summarize_time_index(CASE agg.view_name
            WHEN 'class_states_1m' THEN 'predictions'
            WHEN 'class_interventions_1m' THEN 'interventions'
            ELSE 'skill_mastery' END);
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

-- Retention reads only the page ranges that may hold rows past the horizon: the BRIN indexes
-- on time are brought up to date first.
CREATE OR REPLACE FUNCTION apply_retention(p_now timestamptz DEFAULT now())
    RETURNS TABLE (table_name text, deleted_rows bigint)
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
DECLARE
    horizon interval;
BEGIN
    SELECT sp.value INTO horizon FROM store_policies sp WHERE sp.policy = 'retention';
    IF horizon IS NULL THEN
        RETURN;
    END IF;
    FOREACH table_name IN ARRAY ARRAY['events', 'features', 'predictions', 'skill_mastery',
                                      'recommendations', 'interventions']
    LOOP
        PERFORM summarize_time_index(table_name);
        EXECUTE format('DELETE FROM %I WHERE time < $1', table_name) USING p_now - horizon;
        GET DIAGNOSTICS deleted_rows = ROW_COUNT;
        RETURN NEXT;
    END LOOP;
END
$$;
