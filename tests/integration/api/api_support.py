"""Helpers of the API tests (the fixtures that use them are in conftest.py)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psycopg
import uvicorn
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from api.app import create_app
from api.keys import create_key
from api.settings import ApiOptions, ApiSettings, StoreLocation
from common.kafka import consumer_config
from schemas.records import Intervention
from schemas.topics import LEARNER_PROMPTS, LMS_EVENTS, TUTOR_INTERVENTIONS, TopicSpec
from streams.store import connect
from tutorstream import kafka
from tutorstream.services import free_port

PSEUDONYM_KEY = "api-test-pseudonym-key-0123456789abcdef"
CLASS_A = "class-a"
CLASS_B = "class-b"


@dataclass
class ApiEnv:
    """What a test module shares: where things are, and a key of every kind."""

    bootstrap: str
    database_url: str
    schema: str
    prefix: str
    tokens: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def settings(self, **api_options: Any) -> ApiSettings:
        options = {"rate_per_s": 0.0, "heartbeat_s": 0.5, "key_cache_s": 0.0, **api_options}
        return ApiSettings(
            kafka_bootstrap=self.bootstrap,
            database_url=self.database_url,
            pseudonym_key=PSEUDONYM_KEY,  # type: ignore[arg-type]
            topic_prefix=self.prefix,
            api=ApiOptions(**options),
            store=StoreLocation(db_schema=self.schema),
        )

    def connect(self) -> psycopg.Connection:
        return connect(self.database_url, schema=self.schema)

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def key_for(self, scopes: list[str], classes: list[str] | None = None) -> str:
        """Create a key and return its token."""
        with self.connect() as conn:
            return create_key(conn, "test key", scopes, classes or []).token


def topics_of(prefix: str) -> list[TopicSpec]:
    return [
        TopicSpec(
            name=f"{prefix}{spec.name}",
            partitions=3,
            value_schema=spec.value_schema,
            description=spec.description,
        )
        for spec in (LMS_EVENTS, TUTOR_INTERVENTIONS, LEARNER_PROMPTS)
    ]


XAPI = {"X-Experience-API-Version": "1.0.3"}


@contextlib.contextmanager
def serve(settings: ApiSettings, port: int | None = None) -> Iterator[str]:
    """Run the app under uvicorn on ``port`` (a free loopback one by default), in a thread.

    Yields its base URL once ``/readyz`` answers.
    """
    port = port or free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            wait_until_ready(http)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def wait_until_ready(http: httpx.Client, timeout: float = 30.0) -> None:
    """Wait until ``/readyz`` answers 200: the live feed knows its partitions."""
    deadline = time.monotonic() + timeout
    while http.get("/readyz").status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API was not ready within {timeout:.0f} s")
        time.sleep(0.1)


def unique_class() -> str:
    return f"class-{uuid.uuid4().hex[:10]}"


def json_of(body: bytes) -> Any:
    return orjson.loads(body)


def read_all(bootstrap: str, topic: str, settle: float = 1.5) -> list[Any]:
    partitions = kafka.wait_for_topics(bootstrap, [topic])[topic]
    consumer = Consumer(consumer_config(bootstrap, f"read-{uuid.uuid4().hex}"))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    records = []
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < settle:
            batch = consumer.consume(num_messages=10_000, timeout=0.2)
            if batch:
                idle_since = time.monotonic()
                records.extend(m for m in batch if m.error() is None)
    finally:
        consumer.close()
    return records


InterventionMaker = Callable[..., Intervention]
