"""`replay diff` against the real store: identical rescores agree, changed rows are reported."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from confluent_kafka import Producer
from psycopg import sql

from common.kafka import producer_config
from inference.runtime import LearnerModel
from schemas.records import BehaviouralState
from schemas.topics import LMS_EVENTS
from streams.policy import InterventionPolicy, PolicySettings
from streams.replay.diff import AlertDifference, compare
from streams.replay.exceptions import ReplayDiffError
from streams.replay.plan import Selection
from streams.replay.reader import Replay, run_sync
from streams.replay.rebuild import Rebuild
from streams.store import StoreSettings, StoreSink, migrate
from tutorstream.cohort import generate_cohort

pytestmark = pytest.mark.integration

KEY = b"replay-diff-key"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STATES = [s.value for s in BehaviouralState if s is not BehaviouralState.NONE]


@pytest.fixture
def two_scorings(
    kafka_bootstrap: str, topic_factory: Any, postgres_url: str, pg_schema: Any
) -> tuple[str, str]:
    """The same history scored by the shipped model into a live and a shadow schema."""
    topic = topic_factory("events", spec=LMS_EVENTS)
    producer = Producer(producer_config(kafka_bootstrap))
    for event in generate_cohort(8, 600, 31, start=START):
        producer.produce(topic, key=str(event["learner_id"]).encode(), value=orjson.dumps(event))
        producer.poll(0)
    assert producer.flush(60) == 0
    model = LearnerModel.load()
    schemas = []
    for _ in range(2):
        schema = pg_schema(postgres_url).name
        migrate(postgres_url, schema=schema)
        replay = Replay(
            bootstrap=kafka_bootstrap,
            selection=Selection(topics=(topic,)),
            pseudonym_key=KEY,
            replay_id=uuid.uuid4().hex[:8],
            batch_size=200,
        )
        output = Rebuild(
            model,
            StoreSink(postgres_url, StoreSettings(db_schema=schema)),
            InterventionPolicy(PolicySettings()),
            LMS_EVENTS.partitions,
        )
        run_sync(replay, output)
        schemas.append(schema)
    return schemas[0], schemas[1]


def _rows(url: str, query: str, schema: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql.SQL(query).format(sql.Identifier(schema))).fetchall()


def test_identical_scorings_agree_on_every_state(postgres_url: str, two_scorings: Any) -> None:
    live, shadow = two_scorings

    diff = compare(postgres_url, shadow, live)

    predictions = _rows(postgres_url, "SELECT state FROM {}.predictions", live)
    interventions = _rows(postgres_url, "SELECT count(*) FROM {}.interventions", live)[0][0]
    assert diff.scored == len(predictions) > 0
    assert (diff.base_only, diff.shadow_only) == (0, 0)
    assert [s.state for s in diff.states] == STATES
    for state in diff.states:
        fires = sum(1 for (s,) in predictions if s == state.state)
        assert state.agreement == 1.0
        assert state.base_fires == state.shadow_fires == state.both_fire == fires
        assert state.precision == (1.0 if fires else None)
    assert any(s.base_fires for s in diff.states)
    assert diff.interventions_base == diff.interventions_shadow == interventions > 0
    assert (diff.interventions_only_base, diff.interventions_only_shadow) == (0, 0)
    assert diff.alerted_differently == diff.learners_alerted_differently == 0
    assert diff.differences == []


def test_changed_shadow_rows_are_reported_exactly(postgres_url: str, two_scorings: Any) -> None:
    live, shadow = two_scorings
    base_states = dict(_rows(postgres_url, "SELECT event_id, state FROM {}.predictions", live))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        table = sql.Identifier(shadow, "predictions")
        # three events flip to "gaming" in the shadow, one "gaming" event flips to "none"
        flipped = [e for e, s in sorted(base_states.items()) if s != "gaming"][:3]
        unflipped = [e for e, s in sorted(base_states.items()) if s == "gaming"][:1]
        conn.execute(
            sql.SQL("UPDATE {} SET state = 'gaming' WHERE event_id = ANY(%s)").format(table),
            (flipped,),
        )
        conn.execute(
            sql.SQL("UPDATE {} SET state = 'none' WHERE event_id = ANY(%s)").format(table),
            (unflipped,),
        )
        interventions = sql.Identifier(shadow, "interventions")
        dropped = conn.execute(
            sql.SQL(
                "DELETE FROM {} WHERE intervention_id ="
                " (SELECT min(intervention_id) FROM {}) RETURNING learner_id, state"
            ).format(interventions, interventions)
        ).fetchone()
        assert dropped is not None
        added = conn.execute(
            sql.SQL(
                "INSERT INTO {} (time, intervention_id, event_id, learner_id, class_id, state,"
                " confidence, status, prompt, created_at)"
                " SELECT time, 'made-up', event_id, learner_id, class_id, 'confirmation', 0.9,"
                " 'pending_review', 'p', created_at FROM {}"
                " WHERE state <> 'confirmation' ORDER BY intervention_id LIMIT 1"
                " RETURNING learner_id, state"
            ).format(interventions, interventions)
        ).fetchone()
        assert added is not None
    shadow_states = dict(base_states)
    shadow_states.update({e: "gaming" for e in flipped})
    shadow_states.update({e: "none" for e in unflipped})

    diff = compare(postgres_url, shadow, live)

    scored = len(base_states)
    for state in diff.states:
        base = {e for e, s in base_states.items() if s == state.state}
        other = {e for e, s in shadow_states.items() if s == state.state}
        disagree = len(base ^ other)
        assert (state.base_fires, state.shadow_fires, state.both_fire) == (
            len(base),
            len(other),
            len(base & other),
        ), state.state
        assert state.agreement == (scored - disagree) / scored
        assert state.precision == (len(base & other) / len(other) if other else None)
        assert state.recall == (len(base & other) / len(base) if base else None)
    gaming = next(s for s in diff.states if s.state == "gaming")
    assert gaming.agreement == (scored - 3 - len(unflipped)) / scored < 1.0
    assert (diff.interventions_only_base, diff.interventions_only_shadow) == (1, 1)
    assert diff.interventions_shadow == diff.interventions_base
    expected = {
        AlertDifference(dropped[0], dropped[1], 1, 0),
        AlertDifference(added[0], added[1], 0, 1),
    }
    assert set(diff.differences) == expected
    assert diff.alerted_differently == 2
    assert diff.learners_alerted_differently == len({dropped[0], added[0]})

    limited = compare(postgres_url, shadow, live, limit=1)
    assert len(limited.differences) == 1
    assert limited.alerted_differently == 2


def test_cli_prints_the_table_and_writes_json(
    postgres_url: str, two_scorings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tutorstream.cli import app

    live, shadow = two_scorings
    monkeypatch.setenv("TUTORSTREAM_DATABASE_URL", postgres_url)
    monkeypatch.setenv("TUTORSTREAM_STORE__DB_SCHEMA", live)
    out = tmp_path / "diff.json"
    runner = CliRunner()

    done = runner.invoke(app, ["replay", "diff", "--shadow", shadow, "--json", str(out)])

    assert done.exit_code == 0, done.output
    assert "agreement" in done.output
    assert "wheel_spinning" in done.output
    assert orjson.loads(out.read_bytes()) == orjson.loads(
        orjson.dumps(compare(postgres_url, shadow, live).to_dict())
    )
    neither = runner.invoke(app, ["replay", "diff"])
    assert neither.exit_code == 1
    assert "--model" in neither.output


def test_a_schema_without_a_rescore_is_one_clear_error(postgres_url: str, pg_schema: Any) -> None:
    live = pg_schema(postgres_url).name
    migrate(postgres_url, schema=live)
    empty = pg_schema(postgres_url).name

    with pytest.raises(ReplayDiffError, match=f"schema {empty} holds no predictions"):
        compare(postgres_url, empty, live)
