from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]  # no stubs are published with it
import orjson
import pytest
from contract_data import KEY, load_fixture

from schemas.jsonschema import SCHEMA_DIR, clean_descriptions, drifted, main, render, write
from schemas.normalise import normalise

pytestmark = pytest.mark.unit


def test_committed_schema_files_match_the_models() -> None:
    stale = drifted()
    assert stale == [], f"schema files drifted: {stale}; run `python -m schemas.jsonschema`"


def test_drift_is_detected(tmp_path: Path) -> None:
    write(tmp_path)
    assert drifted(tmp_path) == []
    (tmp_path / "LearningEvent.json").write_text("{}\n", "utf-8")
    (tmp_path / "Retired.json").write_text("{}\n", "utf-8")
    (tmp_path / "Intervention.json").unlink()
    assert sorted(drifted(tmp_path)) == ["Intervention.json", "LearningEvent.json", "Retired.json"]
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert main(["--dir", str(tmp_path)]) == 0
    assert drifted(tmp_path) == []
    assert not (tmp_path / "Retired.json").exists()


def test_every_schema_file_is_a_valid_json_schema() -> None:
    for name, text in render().items():
        schema = json.loads(text)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["title"] == name.removesuffix(".json")


@pytest.mark.parametrize(
    "fixture",
    [
        "xapi/appendix_a_attempted_duration_in_seconds.json",
        "caliper/v1p2/caliperEventAssessmentItemCompleted.json",
        "canvas/quiz_submitted.json",
    ],
)
def test_normalised_events_satisfy_the_published_schema(fixture: str) -> None:
    schema = json.loads((SCHEMA_DIR / "LearningEvent.json").read_text("utf-8"))
    for event in normalise(orjson.dumps(load_fixture(fixture)), KEY):
        jsonschema.validate(event.model_dump(mode="json"), schema)


def test_spec_statements_satisfy_the_published_statement_structure() -> None:
    schema = json.loads((SCHEMA_DIR / "XapiStatement.json").read_text("utf-8"))
    for name in ("appendix_a_long_example.json", "appendix_d_signed_statement.json"):
        jsonschema.validate(load_fixture(f"xapi/{name}"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"actor": {"mbox": "mailto:a@b.c"}, "verb": {"id": "x"}}, schema)


def test_descriptions_do_not_depend_on_how_a_library_keeps_docstring_indentation() -> None:
    raw = "A learner's attempt.\n\n    Scored by the LMS,\n      never by us.\n    "
    dedented = "A learner's attempt.\n\nScored by the LMS,\n  never by us."
    one = {"description": raw, "properties": {"description": {"description": raw}}}
    other = {"description": dedented, "properties": {"description": {"description": dedented}}}
    assert clean_descriptions(one) == clean_descriptions(other)
    assert clean_descriptions({"anyOf": [{"description": raw}]}) == {
        "anyOf": [{"description": dedented}]
    }


def test_committed_descriptions_are_clean() -> None:
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text("utf-8"))
        assert clean_descriptions(schema) == schema, path.name
