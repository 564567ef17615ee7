from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutorstream.cli import app
from tutorstream.grafana.boards import (
    CLASS_OVERVIEW_UID,
    CONSOLE_VARIABLE,
    LEARNER_UID,
    PROMETHEUS_UID,
    STORE_UID,
    console_link,
    dashboards,
    generated_files,
)
from tutorstream.grafana.macros import MacroError, expand_link
from tutorstream.grafana.queries import board_queries

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("relative", sorted(generated_files()))
def test_committed_file_matches_the_code(relative: str) -> None:
    path = ROOT / relative
    assert path.exists(), f"{relative} missing: run `tutorstream grafana build`"
    assert path.read_text(encoding="utf-8") == generated_files()[relative], (
        f"{relative} differs from what the code generates: run `tutorstream grafana build`"
    )


def test_build_check_reports_a_stale_file_and_build_rewrites_it(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["grafana", "build", "--root", str(tmp_path)]).exit_code == 0
    board = tmp_path / "deploy/grafana/dashboards/class-overview.json"
    board.write_text("{}", encoding="utf-8")
    stale = runner.invoke(app, ["grafana", "build", "--root", str(tmp_path), "--check"])
    assert stale.exit_code == 1 and "class-overview.json" in stale.output
    assert board.read_text(encoding="utf-8") == "{}"
    assert runner.invoke(app, ["grafana", "build", "--root", str(tmp_path)]).exit_code == 0
    fresh = runner.invoke(app, ["grafana", "build", "--root", str(tmp_path), "--check"])
    assert fresh.exit_code == 0, fresh.output


def test_boards_have_unique_uids_and_panels_use_the_provisioned_datasources() -> None:
    boards = dashboards()
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids) == 4
    for name, board in boards.items():
        assert board["panels"], name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] in (STORE_UID, PROMETHEUS_UID), panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == panel["datasource"]["uid"]


def test_class_overview_links_learners_to_the_drill_down() -> None:
    board = dashboards()["class-overview.json"]
    assert board["uid"] == CLASS_OVERVIEW_UID
    attention = next(p for p in board["panels"] if p["title"].startswith("Learners needing"))
    links = [
        value
        for override in attention["fieldConfig"]["overrides"]
        for prop in override["properties"]
        if prop["id"] == "links"
        for value in prop["value"]
    ]
    assert links and f"/d/{LEARNER_UID}/" in links[0]["url"]
    assert "var-learner=${__value.raw}" in links[0]["url"]
    # a class id may be an IRI with ?, & or #: the link carries it percent-encoded
    assert "var-class=${class:percentencode}" in links[0]["url"]


def test_tutor_boards_read_the_continuous_aggregates() -> None:
    sql = " ".join(q.sql for q in board_queries())
    for aggregate in ("class_states_1m", "class_interventions_1m", "class_skill_mastery_1h"):
        assert f"FROM {aggregate}" in sql


def test_pipeline_board_queries_the_worker_and_api_metrics() -> None:
    board = dashboards()["pipeline-health.json"]
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    for metric in (
        "tutorstream_events_in_total",
        "tutorstream_dlq_total",
        "tutorstream_consumer_lag",
        "tutorstream_batch_size_bucket",
        "tutorstream_inference_latency_seconds_bucket",
        "tutorstream_sink_latency_seconds_bucket",
        "tutorstream_model_info",
        "tutorstream_api_request_seconds_bucket",
    ):
        assert metric in exprs
    json.dumps(board)  # serialisable as stored


def test_learner_board_asks_for_the_tags_workers_post() -> None:
    from datetime import UTC, datetime

    from schemas.normalise import normalise
    from streams.annotations import annotation
    from streams.policy import Decision, Status
    from streams.processor import InterventionOut
    from streams.prompts import prompt_for
    from tutorstream.cohort import generate_cohort
    from tutorstream.grafana.macros import QueryContext, expand

    (native,) = generate_cohort(1, 1, 3, start=datetime(2026, 3, 2, tzinfo=UTC))
    (event,) = normalise(native, b"k" * 32)
    decision = Decision("x" * 36, "gaming", 0.9, Status.SENT, prompt_for("gaming", "x" * 36))
    posted = annotation(InterventionOut(decision, event, {}, 0.0, 0.0))

    board = dashboards()["learner-drill-down.json"]
    (query,) = [a for a in board["annotations"]["list"] if a["datasource"]["type"] == "grafana"]
    assert query["target"]["type"] == "tags" and query["target"]["matchAny"] is False
    context = QueryContext(
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 3, tzinfo=UTC),
        variables={"learner": event.learner_id, "class": str(event.class_id)},
    )
    asked = {expand(tag, context) for tag in query["target"]["tags"]}
    assert asked <= set(posted["tags"])
    assert f"learner:{event.learner_id}" in asked


def test_provisioned_store_datasource_logs_in_as_a_reader_from_the_environment() -> None:
    import yaml

    text = generated_files()["deploy/grafana/provisioning/datasources/tutorstream.yaml"]
    (store,) = [s for s in yaml.safe_load(text)["datasources"] if s["uid"] == STORE_UID]
    assert store["user"] == "${TUTORSTREAM_GRAFANA_DB_USER:-grafana_reader}"
    assert store["secureJsonData"] == {"password": "${TUTORSTREAM_GRAFANA_DB_PASSWORD}"}
    assert store["url"].startswith("${TUTORSTREAM_GRAFANA_DB_HOST:-")
    assert store["jsonData"]["database"] == "${TUTORSTREAM_GRAFANA_DB_NAME:-tutorstream}"


def _console_links(board: dict[str, object]) -> list[str]:
    text = json.dumps(board)
    return [
        json.loads('"' + part.split('"')[0] + '"')
        for part in text.split('"url": "')[1:]
        if part.startswith("${console")
    ]


def test_tutor_boards_link_to_the_console_with_percent_encoded_ids() -> None:
    boards = dashboards("https://tutors.school.example/")
    for name in ("class-overview.json", "learner-drill-down.json", "intervention-outcomes.json"):
        board = boards[name]
        (console,) = [v for v in board["templating"]["list"] if v["name"] == CONSOLE_VARIABLE]
        # a constant: hidden, and the trailing / dropped so links join with one
        assert console["type"] == "constant" and console["hide"] == 2
        assert console["query"] == "https://tutors.school.example"
        links = _console_links(board)
        assert links, name
        for url in links:
            # the base URL raw (Grafana 10 would percent-encode it), every id percent-encoded
            assert url.startswith("${console:raw}/console/open/"), url
            assert "class=${class:percentencode}" in url
            if "learner=" in url:
                assert re.search(r"&learner=\$\{[\w.]+:percentencode\}$", url), url
    # the operators' board has no class, so no console link
    assert not _console_links(boards["pipeline-health.json"])


@pytest.mark.parametrize(
    "bad", ["", "tutors.school.example", "ftp://x", "https://x/console?a=b", "https://x/#c"]
)
def test_a_console_url_that_is_not_a_base_url_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="console's URL"):
        dashboards(bad)
    result = CliRunner().invoke(
        app,
        ["grafana", "push", "--url", "http://127.0.0.1:9", "--token", "t", "--console-url", bad],
    )
    assert result.exit_code == 2 and "--console-url" in result.output


def test_links_expand_as_grafana_expands_them() -> None:
    url = console_link("learner", "${__value.raw}")
    opened = expand_link(
        url,
        {
            "console": "https://tutors.example",
            "class": "https://school.example/c/7?t=1&s=a#x (b)!",
            "__value.raw": "ab/c",
        },
    )
    assert opened == (
        "https://tutors.example/console/open/learner?class="
        "https%3A%2F%2Fschool.example%2Fc%2F7%3Ft%3D1%26s%3Da%23x%20%28b%29%21&learner=ab%2Fc"
    )
    with pytest.raises(MacroError, match="no value"):
        expand_link(url, {"console": "x"})
    with pytest.raises(MacroError, match="unknown format"):
        expand_link("${class:csv}", {"class": "a"})
