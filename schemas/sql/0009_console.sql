-- The tutors' console: its audit of refused or failed attempts, the roster of names, and the
-- webhooks that deliver approved prompts to the LMS. The same in both modes.
--
-- The roster is the only place a learner's name exists. Names are encrypted by the API with
-- the roster's own key (AES-GCM, TUTORSTREAM_ROSTER_KEY) before they reach this table; the
-- nonce is stored beside each name and the class and pseudonym are its associated data, so a
-- name cannot be moved to another learner. The read-only reporting role cannot read it.

CREATE TABLE console_audit (
    audit_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    actor            text        NOT NULL,
    class_id         text        NOT NULL,
    what             text        NOT NULL,
    target           text,
    outcome          text        NOT NULL
        CONSTRAINT console_audit_outcome_check CHECK (outcome IN ('refused', 'done', 'failed')),
    detail           text
);
COMMENT ON TABLE console_audit IS
    'What tutors tried in the console beyond the intervention actions (which are in '
    'intervention_actions): a refused action on another class, a roster import, a webhook '
    'change. actor is oidc:<subject> or an API key id.';
CREATE INDEX console_audit_class_at_idx ON console_audit (class_id, at DESC);

CREATE TABLE roster (
    class_id      text        NOT NULL,
    learner_id    text        NOT NULL,
    entry_nonce   bytea       NOT NULL,
    entry_sealed  bytea       NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roster_key PRIMARY KEY (class_id, learner_id)
);
COMMENT ON TABLE roster IS
    'Names of a class''s learners and the LMS''s identifiers of them, AES-GCM encrypted with '
    'the roster key; learner_id is the pseudonym the pipeline uses.';

CREATE TABLE class_webhooks (
    class_id       text        PRIMARY KEY,
    url            text        NOT NULL,
    secret_nonce   bytea       NOT NULL,
    secret_sealed  bytea       NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE class_webhooks IS
    'Where a class''s approved prompts go (Standard Webhooks); the signing secret is encrypted '
    'with the roster key.';

CREATE TABLE webhook_deliveries (
    delivery_id      text        PRIMARY KEY,
    class_id         text        NOT NULL,
    intervention_id  text        NOT NULL,
    url              text        NOT NULL,
    body             text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
        CONSTRAINT webhook_deliveries_status_check
        CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
COMMENT ON TABLE webhook_deliveries IS
    'The outbox of webhooks: a delivery is tried until the LMS answers 2xx, then marked '
    'delivered; after the last try it is dead (the dead letters the console shows).';
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_class_idx ON webhook_deliveries (class_id, created_at DESC);

-- The reporting role reads the store's tables through default privileges; names and webhook
-- secrets are not for boards, even encrypted.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'tutorstream_reader') THEN
        REVOKE ALL ON roster, class_webhooks FROM tutorstream_reader;
    END IF;
END
$$;
