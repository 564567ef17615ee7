-- Statement profiles and unmodelled statements.
--
-- profile: the statement profile (id@version) an event was read with, so a replay knows how
-- it was read; NULL for native events and for rows stored before profiles existed.
-- verb: the xAPI verb IRI (or Caliper type/action) of a valid statement the model does not
-- use; such a statement is stored with event_type 'unmodelled' rather than dead-lettered.
ALTER TABLE events ADD COLUMN profile text;
ALTER TABLE events ADD COLUMN verb text;
COMMENT ON COLUMN events.profile IS
    'Statement profile (id@version) the event was read with; NULL for native events.';
COMMENT ON COLUMN events.verb IS
    'Verb IRI (xAPI) or type/action (Caliper) of an unmodelled event (event_type unmodelled).';

-- The statement profile an ingest key's statements are read with (NULL: the default one).
ALTER TABLE api_keys ADD COLUMN profile text;
COMMENT ON COLUMN api_keys.profile IS
    'Statement profile id the key''s statements are read with; NULL for the default profile.';
