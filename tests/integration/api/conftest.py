"""Fixtures of the API tests: a migrated schema, the API's topics, keys, an app and a server.

Everything runs against the session's real Tansu broker and PostgreSQL. The environment
(schema, topics, keys) is made once per test module; tests keep apart by using classes and ids
of their own.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from api_support import CLASS_A, ApiEnv, InterventionMaker, serve, topics_of, wait_until_ready
from confluent_kafka import Producer
from fastapi.testclient import TestClient
from psycopg import sql

from api.app import create_app
from api.keys import create_key
from common.kafka import producer_config
from schemas.records import BehaviouralState, Intervention
from schemas.topics import TUTOR_INTERVENTIONS
from streams.store import migrate
from tutorstream import kafka


@pytest.fixture(scope="module")
def api_env(kafka_bootstrap: str, postgres_url: str) -> Iterator[ApiEnv]:
    """A migrated schema, the three topics the API uses, and keys of every role."""
    tag = uuid.uuid4().hex[:8]
    schema = f"t_api_{tag}"
    prefix = f"test.api.{tag}."
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    migrate(postgres_url, schema=schema)
    specs = topics_of(prefix)
    kafka.create_topics(kafka_bootstrap, specs)
    env = ApiEnv(kafka_bootstrap, postgres_url, schema, prefix)
    with env.connect() as conn:
        for role, scopes, classes in (
            ("ingest", ["ingest"], []),
            ("tutor", ["tutor"], [CLASS_A]),
            ("tutor2", ["tutor"], [CLASS_A]),
            ("admin", ["admin"], []),
            ("revoked", ["admin"], []),
        ):
            made = create_key(conn, f"test {role}", scopes, classes)
            env.tokens[role] = made.token
            env.key_ids[role] = made.key_id
        conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s", (env.key_ids["revoked"],)
        )
    yield env
    with contextlib.suppress(kafka.KafkaSetupError):
        kafka.delete_topics(kafka_bootstrap, [spec.name for spec in specs])
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="module")
def client(api_env: ApiEnv) -> Iterator[TestClient]:
    """The app in process, its lifespan running (pool, producer, live-feed consumer)."""
    with TestClient(create_app(api_env.settings()), raise_server_exceptions=False) as test_client:
        wait_until_ready(test_client)
        yield test_client


@pytest.fixture(scope="module")
def live_url(api_env: ApiEnv) -> Iterator[str]:
    """Base URL of the app served by uvicorn (for streams and real HTTP headers)."""
    with serve(api_env.settings()) as url:
        yield url


@pytest.fixture
def intervention_maker(api_env: ApiEnv) -> Iterator[InterventionMaker]:
    """Store an intervention as the stream worker does: the row first, then the topic record.

    Call it as ``make(class_id, learner_id=..., state=..., publish=True)``.
    """
    producer = Producer(producer_config(api_env.bootstrap))
    counter = iter(range(1_000_000))

    def make(
        class_id: str | None,
        *,
        learner_id: str | None = None,
        state: BehaviouralState = BehaviouralState.GAMING,
        status: str = "pending_review",
        publish: bool = True,
        time_: datetime | None = None,
    ) -> Intervention:
        number = next(counter)
        learner = learner_id or uuid.uuid4().hex * 2
        when = time_ or datetime.now(UTC)
        record = Intervention.create(
            learner_id=learner,
            event_id=f"ev-{uuid.uuid4().hex[:12]}-{number}",
            state=state,
            confidence=0.9,
            prompt="What have you tried on your own so far?",
            model_name="tutorstream-learner",
            model_version="1",
            created_at=when,
            class_id=class_id,
            evidence={"reason": "test"},
            status=status,  # type: ignore[arg-type]
        )
        with api_env.connect() as conn:
            conn.execute(
                "INSERT INTO interventions (time, intervention_id, event_id, learner_id, "
                "class_id, state, confidence, status, prompt_id, prompt, reason, model_version, "
                "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    when,
                    record.intervention_id,
                    record.event_id,
                    record.learner_id,
                    record.class_id,
                    record.state.value,
                    record.confidence,
                    record.status,
                    "gaming.1",
                    record.prompt,
                    "gaming at 90%",
                    "tutorstream-learner@1",
                    record.created_at,
                ),
            )
        if publish:
            producer.produce(
                api_env.topic(TUTOR_INTERVENTIONS.name),
                record.model_dump_json().encode(),
                record.learner_id.encode(),
            )
            assert producer.flush(30) == 0
        return record

    yield make
    producer.flush(10)
