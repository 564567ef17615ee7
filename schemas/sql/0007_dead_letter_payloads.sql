-- Records too large for a dead letter on the DLQ topic (a 2 MB record's dead letter is about
-- 2.8 MB, over the producers' 1 MB request limit). The topic gets a truncated dead letter with
-- the record's head, size and SHA-256; the whole record waits here, once per content hash,
-- for an operator (`tutorstream dlq payload SHA256`).
CREATE TABLE dead_letter_payloads (
    sha256        text        PRIMARY KEY,
    length        bigint      NOT NULL CHECK (length >= 0),
    payload       bytea       NOT NULL,
    record_key    bytea,
    topic         text        NOT NULL,
    "partition"   integer     NOT NULL,
    "offset"      bigint      NOT NULL,
    error_reason  text        NOT NULL,
    stored        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dead_letter_payloads IS
    'Whole records whose dead letters were truncated to fit the DLQ topic, by lower-case hex sha256.';
