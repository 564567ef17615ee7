-- Core tables of the store, the same in both modes.
--
-- Every time-series table is keyed by (record id, time), where time is the time of the learning
-- event the record derives from, never the wall clock of the worker that wrote it: a replay or a
-- retried batch then produces the same key and the sink's ON CONFLICT DO NOTHING drops it.
-- TimescaleDB requires the partitioning column in every unique index, hence time in each key.
-- The mode-specific file of this version makes these tables hypertables (TimescaleDB) or gives
-- them BRIN indexes on time (plain PostgreSQL).
--
-- Learner ids are keyed-HMAC pseudonyms everywhere; no raw identifier is ever stored.

CREATE TABLE events (
    time              timestamptz      NOT NULL,
    event_id          text             NOT NULL,
    learner_id        text             NOT NULL,
    class_id          text,
    session_id        text,
    item_id           text,
    skill_ids         text[]           NOT NULL DEFAULT '{}',
    event_type        text             NOT NULL,
    correct           boolean,
    response_hash     text,
    attempt           integer,
    duration_s        double precision,
    hint_level        integer,
    hint_count        integer,
    item_difficulty   double precision,
    resource_relation text,
    score_scaled      double precision,
    source            text             NOT NULL,
    stored_at         timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT events_key PRIMARY KEY (event_id, time)
);
COMMENT ON TABLE events IS
    'Normalised, pseudonymised learning events (schemas.events.LearningEvent); time is the '
    'event time, stored_at when its batch was committed.';
-- A learner's timeline and the per-class boards.
CREATE INDEX events_learner_time_idx ON events (learner_id, time DESC);
CREATE INDEX events_class_time_idx ON events (class_id, time DESC);

CREATE TABLE features (
    time            timestamptz NOT NULL,
    event_id        text        NOT NULL,
    learner_id      text        NOT NULL,
    class_id        text,
    item_id         text,
    vector          real[]      NOT NULL,
    feature_set     text        NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT features_key PRIMARY KEY (event_id, time)
);
COMMENT ON TABLE features IS
    'Per-event feature vectors as the model saw them; feature_set names the layout of vector.';
CREATE INDEX features_learner_time_idx ON features (learner_id, time DESC);

CREATE TABLE predictions (
    time            timestamptz NOT NULL,
    event_id        text        NOT NULL,
    learner_id      text        NOT NULL,
    class_id        text,
    item_id         text,
    skill_ids       text[]      NOT NULL DEFAULT '{}',
    state           text        NOT NULL,
    confidence      real        NOT NULL,
    state_probs     real[]      NOT NULL,
    p_correct       real,
    model_version   text        NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT predictions_key PRIMARY KEY (event_id, time)
);
COMMENT ON TABLE predictions IS
    'Model output per decision event: detected state, its confidence, the probability of every '
    'state in the model''s state order, and the predicted success on the next item.';
CREATE INDEX predictions_learner_time_idx ON predictions (learner_id, time DESC);
CREATE INDEX predictions_class_time_idx ON predictions (class_id, time DESC);

CREATE TABLE skill_mastery (
    time            timestamptz NOT NULL,
    event_id        text        NOT NULL,
    skill_id        text        NOT NULL,
    learner_id      text        NOT NULL,
    class_id        text,
    mastery         real        NOT NULL,
    model_version   text        NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT skill_mastery_key PRIMARY KEY (event_id, skill_id, time)
);
COMMENT ON TABLE skill_mastery IS
    'Predicted mastery per skill at a decision event, one row per skill, so aggregates can '
    'group by skill without unnesting arrays.';
CREATE INDEX skill_mastery_learner_time_idx ON skill_mastery (learner_id, time DESC);
CREATE INDEX skill_mastery_class_skill_time_idx ON skill_mastery (class_id, skill_id, time DESC);

CREATE TABLE interventions (
    time             timestamptz NOT NULL,
    intervention_id  text        NOT NULL,
    event_id         text        NOT NULL,
    learner_id       text        NOT NULL,
    class_id         text,
    state            text        NOT NULL,
    confidence       real        NOT NULL,
    status           text        NOT NULL,
    prompt_id        text,
    prompt           text        NOT NULL,
    reason           text,
    model_version    text,
    created_at       timestamptz NOT NULL,
    acted_at         timestamptz,
    acted_by         text,
    published_at     timestamptz,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT interventions_key PRIMARY KEY (intervention_id, time)
);
COMMENT ON TABLE interventions IS
    'Interventions raised by the policy; time is the decision event''s time. status is the '
    'current status (the API updates it once, together with acted_at and acted_by, and '
    'records the action in intervention_actions); the sink never overwrites an existing row.';
-- Class history newest first with a keyset cursor on (time, intervention_id), with or without
-- a status filter (the review queue); a learner's timeline.
CREATE INDEX interventions_class_time_idx
    ON interventions (class_id, time DESC, intervention_id DESC);
CREATE INDEX interventions_class_status_time_idx
    ON interventions (class_id, status, time DESC, intervention_id DESC);
CREATE INDEX interventions_learner_time_idx ON interventions (learner_id, time DESC);
-- The outbox: interventions stored but not yet confirmed on tutor.interventions.v1 (a worker
-- killed between the commit and the publish); a worker's sweep publishes them.
CREATE INDEX interventions_unpublished_idx ON interventions (created_at)
    WHERE published_at IS NULL;

CREATE TABLE recommendations (
    time            timestamptz NOT NULL,
    event_id        text        NOT NULL,
    learner_id      text        NOT NULL,
    class_id        text,
    item_id         text        NOT NULL,
    skill_ids       text[]      NOT NULL DEFAULT '{}',
    p_success       real,
    reason          text,
    model_version   text,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT recommendations_key PRIMARY KEY (event_id, time)
);
COMMENT ON TABLE recommendations IS
    'Next-item recommendations per decision event; item_id is the recommended item.';
CREATE INDEX recommendations_learner_time_idx ON recommendations (learner_id, time DESC);
CREATE INDEX recommendations_class_time_idx ON recommendations (class_id, time DESC);

-- The latest recommendation of every learner of a class, kept by the sink in the same
-- transaction as the recommendations rows, so "current recommendations of a class" reads one
-- row per learner instead of scanning history.
CREATE TABLE current_recommendations (
    class_id        text        NOT NULL,
    learner_id      text        NOT NULL,
    time            timestamptz NOT NULL,
    event_id        text        NOT NULL,
    item_id         text        NOT NULL,
    skill_ids       text[]      NOT NULL DEFAULT '{}',
    p_success       real,
    reason          text,
    model_version   text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT current_recommendations_key PRIMARY KEY (class_id, learner_id)
);
COMMENT ON TABLE current_recommendations IS
    'Latest recommendation per (class, learner); rows without a class are not kept here.';

-- Tutor actions on interventions: append-only (a trigger refuses UPDATE, DELETE and TRUNCATE),
-- one action per intervention (a second action violates intervention_actions_once: the API
-- answers 409).
CREATE TABLE intervention_actions (
    action_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    intervention_id    text        NOT NULL,
    intervention_time  timestamptz NOT NULL,
    class_id           text,
    action             text        NOT NULL
        CONSTRAINT intervention_actions_action_check
        CHECK (action IN ('approve', 'dismiss', 'escalate')),
    actor              text        NOT NULL,
    note               text,
    acted_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT intervention_actions_once UNIQUE (intervention_id)
);
COMMENT ON TABLE intervention_actions IS
    'Append-only audit of tutor actions: who (actor, an API key id), when, what, and a note.';
CREATE INDEX intervention_actions_class_time_idx ON intervention_actions (class_id, acted_at DESC);

CREATE FUNCTION intervention_actions_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'intervention_actions is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER intervention_actions_append_only
    BEFORE UPDATE OR DELETE ON intervention_actions
    FOR EACH ROW EXECUTE FUNCTION intervention_actions_refuse_change();
CREATE TRIGGER intervention_actions_no_truncate
    BEFORE TRUNCATE ON intervention_actions
    FOR EACH STATEMENT EXECUTE FUNCTION intervention_actions_refuse_change();

-- API keys: only a hash of the secret is stored; key_id is the public part shown in lists.
CREATE TABLE api_keys (
    key_id        text        PRIMARY KEY,
    name          text        NOT NULL,
    secret_hash   text        NOT NULL,
    scopes        text[]      NOT NULL
        CONSTRAINT api_keys_scopes_check
        CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['ingest', 'tutor', 'admin']),
    class_ids     text[]      NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
COMMENT ON TABLE api_keys IS
    'Bearer keys of the API; secret_hash only, never the secret. class_ids bind a tutor key.';

-- xAPI statements as the LRS returns them on GET ?statementId= / ?voidedStatementId=.
CREATE TABLE xapi_statements (
    statement_id  uuid        PRIMARY KEY,
    stored        timestamptz NOT NULL DEFAULT now(),
    voided        boolean     NOT NULL DEFAULT false,
    payload       jsonb       NOT NULL
);
COMMENT ON TABLE xapi_statements IS
    'Accepted xAPI statements (pseudonymised payload) by id; voided is set when a voiding '
    'statement targets it.';
CREATE INDEX xapi_statements_stored_idx ON xapi_statements (stored);

-- Retention and compression horizons in force, written by every migrate run; the fallback's
-- retention function reads retention from here.
CREATE TABLE store_policies (
    policy      text        PRIMARY KEY,
    value       interval    NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
