-- What the API adds to the store: lookups its endpoints make on every request.

-- A statement that arrives after a voiding statement naming it is stored voided at once; this
-- finds such voiding statements by their target without scanning every statement.
CREATE INDEX xapi_statements_voiding_target_idx
    ON xapi_statements (lower(payload->'object'->>'id'))
    WHERE payload->'verb'->>'id' = 'http://adlnet.gov/expapi/verbs/voided';
-- The statement resource's queries page by stored time, then id.
CREATE INDEX xapi_statements_stored_id_idx ON xapi_statements (stored, statement_id);
