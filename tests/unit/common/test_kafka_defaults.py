from __future__ import annotations

import pytest

from common.kafka import consumer_config, producer_config

pytestmark = pytest.mark.unit


def test_producers_are_idempotent_and_place_learners_as_the_workers_do() -> None:
    config = producer_config("broker:9092")
    assert config["bootstrap.servers"] == "broker:9092"
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    # the Java/aiokafka partitioner, which common.partitioning.partition_for computes
    assert config["partitioner"] == "murmur2_random"


def test_consumers_read_from_the_start_and_commit_only_when_told() -> None:
    config = consumer_config("broker:9092", "readers")
    assert config["group.id"] == "readers"
    assert config["auto.offset.reset"] == "earliest"
    assert config["enable.auto.commit"] is False


def test_overrides_replace_a_default_and_leave_the_others() -> None:
    config = consumer_config("broker:9092", "readers", **{"fetch.wait.max.ms": 10})
    assert config["fetch.wait.max.ms"] == 10
    assert config == consumer_config("broker:9092", "readers") | {"fetch.wait.max.ms": 10}
    assert producer_config("b:1", **{"linger.ms": 2})["linger.ms"] == 2


def test_each_call_returns_a_fresh_mapping() -> None:
    first = producer_config("broker:9092")
    first["acks"] = "1"
    assert producer_config("broker:9092")["acks"] == "all"
