"""`topics check` against the real Tansu broker: retention read back with DescribeConfigs."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.cimpl import NewTopic

from schemas.topics import CATALOGUE, DAY_MS, LMS_EVENTS, LMS_EVENTS_DLQ, CleanupPolicy
from tutorstream import kafka
from tutorstream.cli.topics_retention import check_retention

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    """A topic prefix of this test's own; its topics are deleted afterwards."""
    name = f"ret{uuid.uuid4().hex[:6]}."
    yield name
    present = kafka.topic_partitions(kafka_bootstrap)
    kafka.delete_topics(kafka_bootstrap, [t for t in present if t.startswith(name)])


def _create(bootstrap: str, prefix: str, specs: Any) -> None:
    kafka.create_topics(
        bootstrap, [dataclasses.replace(spec, name=prefix + spec.name) for spec in specs]
    )


def test_the_catalogue_as_created_passes(kafka_bootstrap: str, prefix: str, run_cli: Any) -> None:
    _create(kafka_bootstrap, prefix, CATALOGUE)

    checks = check_retention(kafka_bootstrap, prefix=prefix)

    assert [c.topic for c in checks] == [prefix + s.name for s in CATALOGUE]
    assert all(c.ok for c in checks), [(c.topic, c.problems) for c in checks]
    events = checks[0]
    assert events.reported["retention.ms"] == str(LMS_EVENTS.retention_ms)
    assert events.reported["cleanup.policy"] == "delete"
    compacted = [c for c in checks if c.spec.cleanup_policy is CleanupPolicy.COMPACT]
    assert compacted
    assert all(c.reported["cleanup.policy"] == "compact" for c in compacted)
    done = run_cli(
        "topics", "check", "--bootstrap", kafka_bootstrap, "--prefix", prefix, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(" ok") == len(CATALOGUE)


def test_short_retention_wrong_policy_missing_and_unreported_topics_fail(
    kafka_bootstrap: str, prefix: str, run_cli: Any
) -> None:
    short = dataclasses.replace(LMS_EVENTS, retention_ms=2 * DAY_MS)
    compacted_dlq = dataclasses.replace(LMS_EVENTS_DLQ, cleanup_policy=CleanupPolicy.COMPACT)
    longer = [
        dataclasses.replace(s, retention_ms=60 * DAY_MS)
        for s in CATALOGUE
        if s.name == "tutor.interventions.v1"
    ]
    _create(kafka_bootstrap, prefix, [short, compacted_dlq, *longer])
    # created without any configuration: the broker's defaults, whatever it reports of them
    admin = kafka.admin_client(kafka_bootstrap)
    bare = prefix + "learner.prompts.v1"
    for future in admin.create_topics([NewTopic(bare, num_partitions=1)]).values():
        future.result(30)
    kafka.wait_for_topics(kafka_bootstrap, [bare])

    checks = {c.spec.name: c for c in check_retention(kafka_bootstrap, prefix=prefix)}

    events = checks["lms.events.v1"]
    assert events.problems == ["retention.ms keeps 2 days, catalogue needs at least 30 days"]
    assert checks["lms.events.dlq.v1"].problems == [
        "cleanup.policy is compact, catalogue says delete"
    ]
    interventions = checks["tutor.interventions.v1"]
    assert interventions.ok
    assert interventions.notes == ["keeps 60 days, longer than the catalogue's 14 days"]
    assert checks["tutor.recommendations.v1"].problems == [
        "missing (run `tutorstream topics create`)"
    ]
    prompts = checks["learner.prompts.v1"]
    if "retention.ms" in prompts.reported:  # a broker that reports its defaults (Apache Kafka)
        assert prompts.ok == (int(prompts.reported["retention.ms"]) >= 14 * DAY_MS)
    else:  # Tansu reports only what the topic was created with
        assert any("did not report retention.ms" in p for p in prompts.problems)

    done = run_cli(
        "topics", "check", "--bootstrap", kafka_bootstrap, "--prefix", prefix, timeout=120
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "retention.ms keeps 2 days" in done.stdout
    assert "FAIL" in done.stdout
