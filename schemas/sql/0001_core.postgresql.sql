-- Plain PostgreSQL: the time-series tables stay ordinary tables. Rows arrive in roughly time
-- order, so a BRIN index on time gives range scans (boards, the retention sweep, the fallback
-- aggregates' refreshes) at a tiny fraction of a B-tree's size and write cost.

CREATE INDEX events_time_brin ON events USING brin (time) WITH (pages_per_range = 32);
CREATE INDEX features_time_brin ON features USING brin (time) WITH (pages_per_range = 32);
CREATE INDEX predictions_time_brin ON predictions USING brin (time) WITH (pages_per_range = 32);
CREATE INDEX skill_mastery_time_brin ON skill_mastery USING brin (time)
    WITH (pages_per_range = 32);
CREATE INDEX recommendations_time_brin ON recommendations USING brin (time)
    WITH (pages_per_range = 32);
CREATE INDEX interventions_time_brin ON interventions USING brin (time)
    WITH (pages_per_range = 32);
