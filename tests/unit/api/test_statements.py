from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from api.app import safe_reason
from api.exceptions import BadRequest
from api.statements import (
    StatementPreparer,
    accepted_languages,
    check_version,
    decode,
    decode_more,
    encode_more,
    formatted,
    same_statement,
)
from schemas.exceptions import InvalidEvent
from schemas.pseudonym import Pseudonymiser

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parents[1] / "schemas" / "fixtures" / "xapi"
KEY = b"unit-test-pseudonym-key-0123456789abcdef"
STORED = datetime(2024, 3, 1, 12, tzinfo=UTC)


def preparer() -> StatementPreparer:
    return StatementPreparer(Pseudonymiser(KEY), "https://api.example")


def prepare(statement: object):
    statements, is_array = decode(orjson.dumps(statement))
    return preparer().prepare(statements, is_array=is_array, key_id="k" * 12, stored=STORED)


def test_every_person_in_a_stored_statement_becomes_a_pseudonym():
    long = json.loads((FIXTURES / "appendix_a_long_example.json").read_text())
    (accepted,) = prepare(long)
    text = json.dumps(accepted.stored)
    for secret in (
        "teampb@example.com",
        "Andrew Downes",
        "13936749",
        "toby.openid",
        "ebd31e95054c018b10727ccffd2ef2ec3a016ee9",
        "Team PB",
        "Toby Nichols",
    ):
        assert secret not in text, secret
    actor = accepted.stored["actor"]
    assert actor["objectType"] == "Group"
    assert actor["account"]["homePage"] == "https://api.example/learners"
    assert len(actor["member"]) == 3
    assert all(set(m) <= {"objectType", "account"} for m in actor["member"])
    instructor = accepted.stored["context"]["instructor"]
    assert set(instructor) <= {"objectType", "account"}
    # the topic gets the statement as sent, with its id
    assert orjson.loads(accepted.raw) == long
    assert accepted.stored["authority"]["account"]["name"] == "k" * 12
    assert accepted.stored["stored"] == "2024-03-01T12:00:00.000Z"
    assert accepted.stored["version"] == "1.0.0"


def test_the_key_is_the_pseudonym_the_normaliser_gives_the_learner():
    simple = json.loads((FIXTURES / "appendix_a_simple_statement.json").read_text())
    (accepted,) = prepare(simple)
    assert accepted.key == Pseudonymiser(KEY).mbox("mailto:user@example.com").encode()
    group = {**simple, "actor": {"objectType": "Group", "member": [{"mbox": "mailto:a@b.c"}]}}
    (grouped,) = prepare(group)  # valid xAPI the pipeline does not read: still keyed
    assert grouped.key == Pseudonymiser(KEY).mbox("mailto:a@b.c").encode()


def test_a_statement_without_an_id_gets_a_new_one_each_time():
    simple = json.loads((FIXTURES / "appendix_a_simple_statement.json").read_text())
    del simple["id"]
    (first,) = prepare(simple)
    (again,) = prepare(simple)
    assert first.statement_id != again.statement_id
    assert uuid.UUID(first.statement_id).version == 4
    assert orjson.loads(first.raw)["id"] == first.statement_id
    assert first.stored["id"] == first.statement_id


def test_comparison_ignores_what_the_specification_lets_differ():
    simple = json.loads((FIXTURES / "appendix_a_simple_statement.json").read_text())
    (base,) = prepare(simple)
    other = copy.deepcopy(simple)
    other["timestamp"] = "2015-11-18T13:17:00+01:00"
    other["verb"]["display"] = {"fr": "envoyé"}
    other["object"]["definition"] = {"name": {"de": "einfach"}}
    (same,) = prepare(other)
    assert same_statement(base.stored, same.stored)
    changed = copy.deepcopy(simple)
    changed["result"] = {"success": True}
    (different,) = prepare(changed)
    assert not same_statement(base.stored, different.stored)


def test_batch_ids_must_differ_and_errors_carry_the_index():
    simple = json.loads((FIXTURES / "appendix_a_simple_statement.json").read_text())
    with pytest.raises(InvalidEvent) as twice:
        prepare([simple, simple])
    assert twice.value.path == "[1].id"
    with pytest.raises(InvalidEvent) as empty:
        decode(b"[]")
    assert "no statements" in empty.value.reason


def test_formats():
    simple = json.loads((FIXTURES / "appendix_a_simple_statement.json").read_text())
    simple["verb"]["display"] = {"en-US": "sent", "fr-FR": "envoyé"}
    (accepted,) = prepare(simple)
    ids = formatted(accepted.stored, "ids", None)
    assert ids["verb"] == {"id": simple["verb"]["id"]}
    assert ids["object"] == {"id": simple["object"]["id"]}
    canonical = formatted(accepted.stored, "canonical", "fr;q=0.9, en;q=0.5")
    assert canonical["verb"]["display"] == {"fr-FR": "envoyé"}
    assert formatted(accepted.stored, "exact", None) is accepted.stored
    assert accepted_languages("en;q=0.2, de, fr;q=0") == ["de", "en"]


def test_version_header():
    for good in ("1.0.3", "1.0", "1.0.0", " 1.0.1 "):
        check_version(good)
    for bad in (None, "1.1.0", "0.95", "1.0.x", "2.0.0", ""):
        with pytest.raises(BadRequest) as refused:
            check_version(bad)
        assert refused.value.path == "header.X-Experience-API-Version"


def test_next_page_tokens_round_trip_and_refuse_forgeries():
    token = encode_more({"verb": "http://v"}, STORED, "abc")
    assert decode_more(token) == ({"verb": "http://v"}, (STORED, "abc"))
    with pytest.raises(BadRequest):
        decode_more("not-a-token")


def test_error_reasons_never_repeat_an_identifier():
    reason = "'mailto:ada@school.example' is not valid"
    assert "ada" not in safe_reason("actor.mbox", reason)
    assert "ada" not in safe_reason("[2].context.instructor.account.name", reason)
    assert "ada" not in safe_reason("learner_id", reason)
    assert safe_reason("verb.id", "'x' is not an IRI") == "'x' is not an IRI"
