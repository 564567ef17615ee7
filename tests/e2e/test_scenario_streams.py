"""Scenario streams through the real API, broker, worker and store find the offline detections.

A subset of the scenario suite (tutorstream's own xAPI and Canvas's Caliper, a behaviour that
the shipped model detects, one it partly detects and a control) is posted to ``POST
/xapi/statements`` and ``POST /caliper`` (Canvas's with an ingest key bound to its school's
producer profile, which the API and the worker load); a worker with the shipped model and the
default policy processes it; the interventions it stores are the ones ``tutorstream model eval
--scenarios`` computes offline for the same statements, so the offline suite measures what the
deployed pipeline does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.keys import create_key
from api.settings import ApiOptions, ApiSettings, StoreLocation
from inference.lab.scenarios.learners import SCENARIOS
from inference.lab.scenarios.scoring import summarise
from inference.lab.scenarios.styles import STYLES, XAPI_PATH
from inference.runtime import LearnerModel
from schemas.profiles import ProfileSettings
from streams.store import connect
from tutorstream.scenarios.runner import build_suite, run_offline

pytestmark = pytest.mark.e2e

KEY = "scenario-e2e-pseudonym-key-0123456789"
XAPI_HEADERS = {"X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}


def test_scenario_streams_through_the_deployed_pipeline(pipeline: Any) -> None:
    styles = [s for s in STYLES if s.name in ("tutorstream", "canvas")]
    # wheel-spinning and resubmission are detected by the rules beside the model, whose
    # memory travels in the learner's state through the worker's tables
    scenarios = [
        s
        for s in SCENARIOS
        if s.name in ("rapid_guessing", "hint_abuse", "resubmission", "wheel_spinning", "engaged")
    ]
    suite = build_suite(per_scenario=3, per_control=3, seed=23, styles=styles, scenarios=scenarios)
    model = LearnerModel.load(intra_op_threads=1)
    expected, runs = run_offline(suite, model, pseudonym_key=KEY.encode())
    assert not any(run.dead_letters for run in runs.values())

    canvas = next(s for s in styles if s.name == "canvas")
    school = canvas.profile_path()
    assert school is not None and canvas.profile is not None
    settings = ApiSettings(
        profiles=ProfileSettings(files=str(school)),
        kafka_bootstrap=pipeline.bootstrap,
        database_url=pipeline.database_url,
        pseudonym_key=SecretStr(KEY),
        topic_prefix=pipeline.prefix,
        api=ApiOptions(rate_per_s=0.0, key_cache_s=0.0),
        store=StoreLocation(db_schema=pipeline.schema),
    )
    with connect(pipeline.database_url, schema=pipeline.schema) as conn:
        token = create_key(conn, "scenario producer", ["ingest"], []).token
        canvas_token = create_key(conn, "canvas", ["ingest"], [], profile=canvas.profile).token
    auth = {"Authorization": f"Bearer {token}"}
    canvas_auth = {"Authorization": f"Bearer {canvas_token}"}
    pipeline.start_worker(TUTORSTREAM_PSEUDONYM_KEY=KEY, TUTORSTREAM_PROFILES__FILES=str(school))

    where: dict[str, tuple[str, int]] = {}
    sent = [
        (statement, rendered.learner.learner, index)
        for rendered in suite.rendered
        for index, statement in enumerate(rendered.statements)
    ]
    sent.sort(key=lambda entry: (entry[0].at, entry[1], entry[2]))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        xapi_batch: list[Any] = []

        def flush() -> None:
            if xapi_batch:
                body = b"[" + b",".join(xapi_batch) + b"]"
                response = client.post(XAPI_PATH, content=body, headers={**XAPI_HEADERS, **auth})
                assert response.status_code == 200, response.text
                xapi_batch.clear()

        for statement, learner, index in sent:
            where[statement.event_id.lower()] = (learner, index)
            if statement.path == XAPI_PATH:
                xapi_batch.append(statement.payload)
                if len(xapi_batch) >= 50:
                    flush()
            else:
                flush()  # keep each learner's records in time order across the endpoints
                response = client.post(
                    statement.path,
                    content=statement.payload,
                    headers={"Content-Type": "application/json", **canvas_auth},
                )
                assert response.status_code == 200, response.text
        flush()

    pipeline.wait_for("SELECT count(*) FROM events", len(sent), timeout=300)
    stored = pipeline.rows("SELECT event_id, state FROM interventions")
    found: dict[str, list[tuple[int, str]]] = {}
    for event_id, state in stored:
        learner, index = where[event_id]
        found.setdefault(learner, []).append((index, state))
    offline = {o.learner: sorted(o.interventions) for o in expected if o.interventions}
    assert {k: sorted(v) for k, v in found.items()} == offline

    # and the table computed from the stored interventions is the offline one
    rows = summarise(
        dataclasses.replace(o, interventions=tuple(sorted(found.get(o.learner, []))))
        for o in expected
    )
    assert [(r.scenario, r.style, r.detected, r.flagged) for r in rows] == [
        (r.scenario, r.style, r.detected, r.flagged) for r in summarise(expected)
    ]
    hint_abuse = next(r for r in rows if r.scenario == "hint_abuse")
    assert hint_abuse.detected == hint_abuse.learners  # the pipeline does detect something
    spinning = next(r for r in rows if (r.scenario, r.style) == ("wheel_spinning", "tutorstream"))
    assert spinning.detected == spinning.learners
