-- TimescaleDB: the time-series tables become hypertables partitioned on time. Each also gets
-- TimescaleDB's default (time DESC) index, which serves time-range scans and the continuous
-- aggregates' refreshes.
--
-- Chunk intervals: per-event tables take one day, so a day's chunk of a busy deployment stays
-- well inside memory and "today" (the live boards and the review queue) reads one or two chunks;
-- interventions are a few percent of events, so a week keeps their chunks from being tiny while
-- the class history page (newest first, cursor) still touches few chunks.

SELECT create_hypertable('events', by_range('time', INTERVAL '1 day'));
SELECT create_hypertable('features', by_range('time', INTERVAL '1 day'));
SELECT create_hypertable('predictions', by_range('time', INTERVAL '1 day'));
SELECT create_hypertable('skill_mastery', by_range('time', INTERVAL '1 day'));
SELECT create_hypertable('recommendations', by_range('time', INTERVAL '1 day'));
SELECT create_hypertable('interventions', by_range('time', INTERVAL '7 days'));
