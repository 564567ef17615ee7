-- Plain PostgreSQL: retention as a function the pipeline calls with the aggregates' refresh
-- (TimescaleDB runs it as a background policy). It deletes raw rows older than the retention
-- horizon in store_policies; aggregate rows are kept, as TimescaleDB keeps them when it drops
-- raw chunks. There is no compression in this mode.

CREATE FUNCTION apply_retention(p_now timestamptz DEFAULT now())
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
        EXECUTE format('DELETE FROM %I WHERE time < $1', table_name) USING p_now - horizon;
        GET DIAGNOSTICS deleted_rows = ROW_COUNT;
        RETURN NEXT;
    END LOOP;
END
$$;
