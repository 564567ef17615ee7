-- Attachment data of xAPI statements sent in multipart/mixed bodies, kept once per content
-- hash: statements reference attachments by sha2, and the same file attached to many statements
-- (a course certificate, a rubric) is stored once. The request body cap
-- (TUTORSTREAM_API__MAX_BODY_BYTES) bounds the size of each.
CREATE TABLE xapi_attachments (
    sha2          text        PRIMARY KEY,
    content_type  text        NOT NULL,
    length        bigint      NOT NULL CHECK (length >= 0),
    content       bytea       NOT NULL,
    stored        timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE xapi_attachments IS
    'Raw data of xAPI attachments by lower-case hex sha2; statements refer to them by hash.';
