from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import ConfigResource

from schemas.topics import CATALOGUE, LMS_EVENTS, TopicSpec
from tutorstream import kafka, services

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_broker(tmp_path: Path):
    """A broker of this test alone, so catalogue names can be created from nothing."""
    broker = services.start_broker(tmp_path / "logs")
    yield broker.url
    broker.stop()


def _renamed(specs: tuple[TopicSpec, ...]) -> list[TopicSpec]:
    suffix = uuid.uuid4().hex[:8]
    return [dataclasses.replace(spec, name=f"{spec.name}.{suffix}") for spec in specs]


def _config(bootstrap: str, topic: str) -> dict[str, str]:
    resource = ConfigResource("topic", topic)
    admin = kafka.admin_client(bootstrap)
    future = admin.describe_configs([resource])[resource]
    return {entry.name: entry.value for entry in future.result(timeout=30).values()}


def test_creating_the_catalogue_twice_creates_once_then_finds_every_topic(
    kafka_bootstrap: str,
) -> None:
    specs = _renamed(CATALOGUE)
    try:
        first = kafka.create_topics(kafka_bootstrap, specs)
        second = kafka.create_topics(kafka_bootstrap, specs)
        on_broker = kafka.topic_partitions(kafka_bootstrap)
    finally:
        kafka.delete_topics(kafka_bootstrap, [spec.name for spec in specs])

    assert [r.outcome for r in first] == [kafka.TopicOutcome.CREATED] * len(specs)
    assert [r.outcome for r in second] == [kafka.TopicOutcome.EXISTS] * len(specs)
    assert all(r.matches for r in first + second)
    assert {spec.name: on_broker[spec.name] for spec in specs} == {
        spec.name: spec.partitions for spec in specs
    }


def test_created_topics_carry_the_catalogue_retention_and_cleanup_policy(
    kafka_bootstrap: str, topic_factory
) -> None:
    events = topic_factory("events", spec=LMS_EVENTS)
    compacted = topic_factory("recommendations", spec=CATALOGUE[3])

    events_config = _config(kafka_bootstrap, events)
    compacted_config = _config(kafka_bootstrap, compacted)

    assert events_config["cleanup.policy"] == "delete"
    assert events_config["retention.ms"] == str(LMS_EVENTS.retention_ms)
    assert compacted_config["cleanup.policy"] == "compact"


def test_an_existing_topic_with_other_partitions_is_reported_and_left_alone(
    kafka_bootstrap: str, topic_factory
) -> None:
    name = topic_factory("narrow", partitions=2)
    wider = TopicSpec(name=name, partitions=8, value_schema="test", description="test")

    (result,) = kafka.create_topics(kafka_bootstrap, [wider])

    assert result.outcome is kafka.TopicOutcome.EXISTS
    assert (result.partitions, result.expected_partitions, result.matches) == (2, 8, False)
    assert kafka.topic_partitions(kafka_bootstrap)[name] == 2


def test_cli_creates_the_catalogue_idempotently_and_lists_it(fresh_broker: str, run_cli) -> None:
    env = {"TUTORSTREAM_KAFKA_BOOTSTRAP": fresh_broker}

    missing = run_cli("topics", "list", env=env)
    first = run_cli("topics", "create", env=env)
    second = run_cli("topics", "create", env=env)
    listed = run_cli("topics", "list", env=env)

    assert missing.returncode == 3
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert listed.returncode == 0, listed.stderr
    for spec in CATALOGUE:
        assert f"{spec.name}" in first.stdout
        created = next(line for line in first.stdout.splitlines() if line.startswith(spec.name))
        again = next(line for line in second.stdout.splitlines() if line.startswith(spec.name))
        shown = next(line for line in listed.stdout.splitlines() if line.startswith(spec.name))
        assert created.split()[1:3] == ["created", str(spec.partitions)]
        assert again.split()[1:3] == ["exists", str(spec.partitions)]
        assert shown.split()[1] == str(spec.partitions)
    assert kafka.topic_partitions(fresh_broker) == {s.name: s.partitions for s in CATALOGUE}


def test_cli_says_how_to_start_a_broker_when_none_is_there(run_cli) -> None:
    result = run_cli("topics", "create")

    assert result.returncode == 1
    assert "tutorstream stack up" in result.stderr
    assert "Traceback" not in result.stderr
