"""`tutorstream profiles check`: a producer's sample, per verb and per field, and a verdict."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from tutorstream.cli import app

pytestmark = pytest.mark.unit

ADL = "http://adlnet.gov/expapi/verbs/"
LMS = "https://lms.example.edu/xapi/"
SECTION = "https://lms.example.edu/course/9/section/2"
PROFILE = f"""\
profile: my-lms
version: 1
extends: builtin
verbs:
  - ids: [{LMS}verbs/hinted]
    event_type: hint_request
fields:
  hint_level:
    - {{from: result_extension, key: {LMS}hint-level}}
  skills:
    - {{from: object_id, pattern: "/item/([^/]+)/[^/]+$"}}
"""


def _sample(tmp_path: Path, invalid: bool = False) -> Path:
    lines: list[dict[str, Any]] = []
    for n in range(12):
        item = f"https://lms.example.edu/item/fractions/{n % 4}"
        base = {
            "actor": {"mbox": f"mailto:l{n % 3}@example.edu"},
            "timestamp": f"2026-03-02T09:00:{n:02d}Z",
            "context": {"contextActivities": {"grouping": [{"id": SECTION}]}},
        }
        lines += [
            {
                **base,
                "id": str(uuid.uuid4()),
                "verb": {"id": ADL + "answered"},
                "object": {"id": item},
                "result": {"success": n % 2 == 0},
            },
            {
                **base,
                "id": str(uuid.uuid4()),
                "verb": {"id": "http://id.tincanapi.com/verb/viewed"},
                "object": {"id": f"{item}/feedback"},
            },
            {
                **base,
                "id": str(uuid.uuid4()),
                "verb": {"id": f"{LMS}verbs/hinted"},
                "object": {"id": item},
                "result": {"extensions": {f"{LMS}hint-level": n % 3}},
            },
        ]
    if invalid:
        lines.append(
            {
                "actor": {"mbox": "ada"},
                "verb": {"id": ADL + "answered"},
                "object": {"id": "https://lms.example.edu/q"},
                "timestamp": "2026-03-02T09:00:00Z",
            }
        )
    path = tmp_path / "sample.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n\n")
    return path


def test_the_builtin_profile_reports_what_a_dialect_lacks(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app, ["profiles", "check", str(_sample(tmp_path, invalid=True)), "--json", str(out)]
    )
    assert result.exit_code == 1, result.output
    assert "NOT fit to go live" in result.output
    report = orjson.loads(out.read_bytes())
    assert report["verbs"][f"{LMS}verbs/hinted"]["unmodelled"] == {"verb not in profile": 12}
    assert report["verbs"]["http://id.tincanapi.com/verb/viewed"]["event_types"] == {
        "feedback_view": 12
    }
    assert report["fields"]["skills"] == {"found": 0, "of": 12}
    assert report["invalid_lines"] == [
        {
            "line": 37,
            "path": "actor.mbox",
            "reason": "must be a mailto IRI such as mailto:learner@example.edu",
        }
    ]
    assert any("skill" in problem for problem in report["problems"])


def test_the_producers_profile_makes_it_fit(tmp_path: Path) -> None:
    profile = tmp_path / "my-lms.yaml"
    profile.write_text(PROFILE)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "profiles",
            "check",
            str(_sample(tmp_path)),
            "--profile",
            str(profile),
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "fit to go live" in result.output
    report = orjson.loads(out.read_bytes())
    assert report["profile"] == "my-lms@1"
    assert report["fields"]["skills"] == {"found": 12, "of": 12}
    assert report["fields"]["hint_level"] == {"found": 12, "of": 12}
    assert report["classes"] == {SECTION: 36}
    assert report["hint_levels"] == {"0": 4, "1": 4, "2": 4}


def test_a_broken_profile_or_missing_sample_is_exit_status_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(PROFILE.replace("hint_request", "hint"))
    result = CliRunner().invoke(
        app, ["profiles", "check", str(_sample(tmp_path)), "--profile", str(broken)]
    )
    assert result.exit_code == 2
    assert f"{broken}:6: verbs[0].event_type:" in result.output
    missing = CliRunner().invoke(app, ["profiles", "check", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2


def test_a_caliper_producer_needs_its_correctness_read_and_its_profile_reads_it(
    tmp_path: Path,
) -> None:
    """A per-question Caliper stream in Canvas's conventions (the scenario suite's ``canvas``
    style): the built-in profile finds its skills (the items' learning objectives) but not its
    correctness, which the school's producer profile reads with a ``caliper`` source."""
    from inference.lab.scenarios.learners import SCENARIOS, cohort
    from inference.lab.scenarios.styles import STYLES

    scenario = next(s for s in SCENARIOS if s.name == "wheel_spinning")
    (learner,) = cohort(scenario, scenario.variants[0], 1, seed=3, prefix="")
    canvas = next(s for s in STYLES if s.name == "canvas")
    statements, _ = canvas.statements(learner)
    sample = tmp_path / "canvas.jsonl"
    sample.write_bytes(b"\n".join(s.payload for s in statements) + b"\n")
    answers = sum(a.kind.value == "answer" for a in learner.acts)

    plain = tmp_path / "builtin.json"
    result = CliRunner().invoke(app, ["profiles", "check", str(sample), "--json", str(plain)])
    assert result.exit_code == 1, result.output
    report = orjson.loads(plain.read_bytes())
    assert report["fields"]["skills"] == {"found": answers, "of": answers}
    assert report["fields"]["correct"] == {"found": 0, "of": answers}
    assert any("right" in problem for problem in report["problems"])

    school = canvas.profile_path()
    assert school is not None
    read = tmp_path / "school.json"
    args = ["profiles", "check", str(sample), "--profile", str(school), "--json", str(read)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = orjson.loads(read.read_bytes())
    assert report["profile"] == "school-canvas@1"
    assert report["fields"]["correct"] == {"found": answers, "of": answers}
    assert report["verbs"]["NavigationEvent/NavigatedTo"]["event_types"] == {
        "feedback_view": sum(a.kind.value == "feedback" for a in learner.acts)
    }
