-- TimescaleDB: continuous aggregates for the boards, with real-time aggregation on
-- (materialized_only = false) so a board shows the minute that is still filling.
--
-- Refresh windows (start_offset) are days, far inside the retention horizon (400 days by
-- default; `migrate` refuses a retention that reaches into a refresh window), so dropping old
-- raw chunks never deletes aggregate rows. Data arriving later than start_offset is not
-- re-aggregated by the policy.

CREATE MATERIALIZED VIEW class_states_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket,
       class_id,
       state,
       count(*) AS predictions,
       avg(confidence) AS mean_confidence
FROM predictions
GROUP BY bucket, class_id, state
WITH NO DATA;

CREATE MATERIALIZED VIEW class_interventions_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket,
       class_id,
       state,
       status,
       count(*) AS interventions
FROM interventions
GROUP BY bucket, class_id, state, status
WITH NO DATA;

CREATE MATERIALIZED VIEW class_skill_mastery_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket,
       class_id,
       skill_id,
       count(*) AS estimates,
       avg(mastery) AS mean_mastery
FROM skill_mastery
GROUP BY bucket, class_id, skill_id
WITH NO DATA;

SELECT add_continuous_aggregate_policy('class_states_1m',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('class_interventions_1m',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('class_skill_mastery_1h',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');
