"""Real LMS vocabularies through the real API, broker, worker and store.

A valid statement the model does not use is stored (unmodelled, with its verb and profile) and
counted; only invalid records reach the dead-letter topic. A producer's own profile, named by
its ingest key on the HTTP path and by a record header on the Kafka path, is how its statements
are read, and the profile is stored with each event. A profile file with an error stops the
worker and the API, naming the file, the line and the field.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import create_key
from api.settings import ApiOptions, ApiSettings, StoreLocation
from common.kafka import producer_config
from common.settings import DEV_PSEUDONYM_KEY
from schemas.profiles import PROFILE_HEADER, ProfileError, ProfileSettings, load_profiles
from streams.store.connection import connect
from tutorstream.cli.topics_inspect import inspect_topic

pytestmark = pytest.mark.e2e

ADL = "http://adlnet.gov/expapi/verbs/"
LMS = "https://lms.example.edu/xapi/"
SECTION = "https://lms.example.edu/course/9/section/2"

PROFILE = f"""\
profile: my-lms
version: 3
extends: builtin
default_class: my-lms/unassigned
verbs:
  - ids: [{LMS}verbs/hinted]
    event_type: hint_request
fields:
  hint_level:
    - {{from: result_extension, key: {LMS}hint-level}}
  skills:
    - {{from: object_id, pattern: "/item/([^/]+)/[^/]+$"}}
  class:
    - {{from: context_extension, key: {LMS}section}}
"""


def _statement(verb: str, n: int, learner: str = "ada", **parts: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.UUID(int=n)),
        "actor": {"objectType": "Agent", "mbox": f"mailto:{learner}@example.edu"},
        "verb": {"id": verb},
        "object": {"objectType": "Activity", "id": f"https://lms.example.edu/item/fractions/{n}"},
        "timestamp": f"2026-03-02T09:{n // 60:02d}:{n % 60:02d}Z",
        "context": {"extensions": {f"{LMS}section": SECTION}},
    }
    body.update(parts)
    return body


def _produce(
    bootstrap: str, topic: str, records: list[tuple[bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = Producer(producer_config(bootstrap))
    for value, headers in records:
        producer.produce(topic, key=b"lms", value=value, headers=headers)
    assert producer.flush(60) == 0


def test_unmodelled_statements_are_stored_and_counted_never_dead_lettered(
    pipeline: Any, read_topic: Any, tmp_path: Path
) -> None:
    profile_file = tmp_path / "my-lms.yaml"
    profile_file.write_text(PROFILE)
    profiles = {"TUTORSTREAM_PROFILES__FILES": str(profile_file)}
    pipeline.start_worker(**profiles)

    # Kafka path: the producer names its profile in a header; one record names none
    header = [(PROFILE_HEADER, b"my-lms")]
    hint = _statement(f"{LMS}verbs/hinted", 1, result={"extensions": {f"{LMS}hint-level": 2}})
    bookmarked = _statement(f"{LMS}verbs/bookmarked", 2)
    launched = _statement(ADL + "launched", 3)
    no_class = _statement(ADL + "answered", 4, context={})
    invalid = _statement(ADL + "answered", 5, actor={"objectType": "Agent", "mbox": "ada"})
    builtin_read = _statement(f"{LMS}verbs/hinted", 6)
    _produce(
        pipeline.bootstrap,
        pipeline.topic("lms.events.v1"),
        [
            (orjson.dumps(hint), header),
            (orjson.dumps(bookmarked), header),
            (orjson.dumps(launched), header),
            (orjson.dumps(no_class), header),
            (orjson.dumps(invalid), header),
            (orjson.dumps(builtin_read), []),
        ],
    )

    # HTTP path: an ingest key bound to the profile
    settings = ApiSettings(
        kafka_bootstrap=pipeline.bootstrap,
        database_url=pipeline.database_url,
        topic_prefix=pipeline.prefix,
        api=ApiOptions(rate_per_s=0.0, key_cache_s=0.0),
        store=StoreLocation(db_schema=pipeline.schema),
        profiles=ProfileSettings(files=str(profile_file)),
    )
    with connect(pipeline.database_url, schema=pipeline.schema) as conn:
        token = create_key(conn, "lms", ["ingest"], profile="my-lms").token
    posted = [_statement(f"{LMS}verbs/hinted", 7), _statement(f"{LMS}verbs/rated", 8)]
    with TestClient(create_app(settings)) as client:
        answer = client.post(
            "/xapi/statements",
            json=posted,
            headers={"Authorization": f"Bearer {token}", "X-Experience-API-Version": "1.0.3"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Tutorstream-Unmodelled"] == "1"
        assert answer.headers["X-Tutorstream-Profile"] == "my-lms@3"
        assert "tutorstream_api_events_unmodelled" in client.get("/metrics").text

    # 6 valid Kafka records and 2 posted statements are stored, the invalid one is a dead letter
    assert pipeline.wait_for("SELECT count(*) FROM events", 7) == 7
    rows = {
        row[0]: row[1:]
        for row in pipeline.rows(
            "SELECT event_id, event_type, verb, profile, class_id, hint_level, skill_ids "
            "FROM events"
        )
    }
    assert rows[hint["id"]] == ("hint_request", None, "my-lms@3", SECTION, 2, ["fractions"])
    assert rows[bookmarked["id"]][:3] == ("unmodelled", f"{LMS}verbs/bookmarked", "my-lms@3")
    assert rows[launched["id"]][:3] == ("unmodelled", ADL + "launched", "my-lms@3")
    assert rows[no_class["id"]][3] == "my-lms/unassigned"
    # without a header the worker's default (built-in) profile reads it: the verb is unknown
    assert rows[builtin_read["id"]][:3] == ("unmodelled", f"{LMS}verbs/hinted", "builtin@3")
    assert rows[posted[0]["id"]][:3] == ("hint_request", None, "my-lms@3")
    assert rows[posted[1]["id"]][:3] == ("unmodelled", f"{LMS}verbs/rated", "my-lms@3")
    (letter,) = read_topic(pipeline.topic("lms.events.dlq.v1"), 1)
    assert orjson.loads(letter.value())["error_path"] == "actor.mbox"

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = pipeline.metrics()
        if f'verb="{LMS}verbs/rated"' in text:
            break
        time.sleep(0.5)
    assert (
        f'tutorstream_unmodelled_total{{profile="my-lms@3",verb="{LMS}verbs/bookmarked"}} 1.0'
        in text
    )
    assert 'tutorstream_default_class_total{profile="my-lms@3"} 1.0' in text

    # topics inspect counts the raw topic the way the worker reads it
    report = inspect_topic(
        pipeline.bootstrap,
        pipeline.topic("lms.events.v1"),
        DEV_PSEUDONYM_KEY.encode(),
        sample=0,
        interval=0.1,
        kind="events",
        scan=100,
        profiles=load_profiles([profile_file]),
    )
    assert report.modelled == {"hint_request": 2, "answer_submit": 1}
    assert report.unmodelled == {
        f"{LMS}verbs/bookmarked (my-lms@3)": 1,
        f"{ADL}launched (my-lms@3)": 1,
        f"{LMS}verbs/hinted (builtin@3)": 1,
        f"{LMS}verbs/rated (my-lms@3)": 1,
    }
    assert report.invalid == 1


def test_a_profile_file_with_an_error_stops_the_worker_and_the_api(
    pipeline: Any, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(PROFILE.replace("event_type: hint_request", "event_type: hint"))
    worker = pipeline.start_worker(TUTORSTREAM_PROFILES__FILES=str(broken))
    try:
        code = worker.wait(120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker started with a broken profile\n{pipeline.log_tail()}")
    assert code != 0
    log = pipeline.log_tail(10**6)
    assert f"{broken}:7: verbs[0].event_type:" in log, log

    settings = ApiSettings(
        kafka_bootstrap=pipeline.bootstrap,
        database_url=pipeline.database_url,
        profiles=ProfileSettings(files=str(broken)),
    )
    with pytest.raises(ProfileError) as caught:
        create_app(settings)
    assert f"{broken}:7: verbs[0].event_type:" in str(caught.value)
    api = subprocess.run(
        [sys.executable, "-c", "from tutorstream.cli import main; main()", "api"],
        env=pipeline.env(TUTORSTREAM_PROFILES__FILES=str(broken)),
        capture_output=True,
        timeout=120,
    )
    assert api.returncode != 0
    assert f"{broken}:7: verbs[0].event_type:" in api.stderr.decode() + api.stdout.decode()
