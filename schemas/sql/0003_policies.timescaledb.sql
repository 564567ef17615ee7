-- TimescaleDB: how old chunks are compressed. The compression and retention policies (when,
-- from the TUTORSTREAM_STORE__COMPRESSION_AFTER and __RETENTION settings) are added by every
-- `migrate` run, since they follow settings rather than a schema version.
--
-- Segments by class keep a class's rows together (every board and API query names a class);
-- ordering by learner then time lets a learner's timeline skip most of a compressed segment.
-- The unique key's columns are part of the ordering (TimescaleDB warns otherwise), so checking
-- a late duplicate against a compressed chunk decompresses only the batches that can hold it.

ALTER TABLE events SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'class_id',
    timescaledb.compress_orderby = 'learner_id, time DESC, event_id');
ALTER TABLE features SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'class_id',
    timescaledb.compress_orderby = 'learner_id, time DESC, event_id');
ALTER TABLE predictions SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'class_id',
    timescaledb.compress_orderby = 'learner_id, time DESC, event_id');
ALTER TABLE skill_mastery SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'class_id',
    timescaledb.compress_orderby = 'skill_id, learner_id, time DESC, event_id');
ALTER TABLE recommendations SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'class_id',
    timescaledb.compress_orderby = 'learner_id, time DESC, event_id');
ALTER TABLE interventions SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'class_id',
    timescaledb.compress_orderby = 'time DESC, intervention_id DESC');
