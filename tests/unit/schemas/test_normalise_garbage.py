from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from contract_data import KEY, load_fixture, statements
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.exceptions import InvalidEvent
from schemas.native import NativeEvent
from schemas.normalise import MAX_PAYLOAD_BYTES, detect_format, normalise
from schemas.pseudonym import Pseudonymiser

pytestmark = pytest.mark.unit

CALIPER = load_fixture("caliper/v1p2/caliperEnvelopeEventSingle.json")
NATIVE = NativeEvent.model_json_schema()["examples"][0]
XAPI = load_fixture("xapi/appendix_d_statement.json")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def outcome(payload: Any) -> str:
    """Normalise, and say how it ended; any exception other than InvalidEvent fails the test."""
    try:
        events = normalise(payload, KEY)
    except InvalidEvent as error:
        assert isinstance(error.path, str)
        assert error.reason
        assert str(error)
        return "invalid"
    assert events
    return "events"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_another_exception(data: bytes) -> None:
    outcome(data)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_arbitrary_json_never_escapes_as_another_exception(value: Any) -> None:
    outcome(orjson.dumps(value))
    outcome(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statement=statements(), data=st.data())
def test_truncated_json_is_refused(statement: dict[str, Any], data: st.DataObject) -> None:
    raw = orjson.dumps(statement)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(InvalidEvent) as caught:
        normalise(raw[:cut], KEY)
    assert caught.value.path == ""
    assert "not valid JSON" in caught.value.reason


@pytest.mark.parametrize("payload", [XAPI, CALIPER, NATIVE], ids=["xapi", "caliper", "native"])
def test_every_prefix_of_real_records_is_refused(payload: dict[str, Any]) -> None:
    raw = orjson.dumps(payload)
    for cut in range(len(raw)):
        with pytest.raises(InvalidEvent):
            normalise(raw[:cut], KEY)


@settings(max_examples=200, deadline=None)
@given(
    record=st.sampled_from([XAPI, CALIPER, NATIVE]),
    key=st.text(max_size=12),
    value=json_values,
)
def test_records_with_an_extra_or_replaced_top_level_property_are_handled(
    record: dict[str, Any], key: str, value: Any
) -> None:
    outcome(orjson.dumps({**record, key: value}))


@pytest.mark.parametrize(
    "payload",
    [b"", b"   ", b"null", b"42", b'"text"', b"true", b"[]", b"{}", b"[[]]", b"[42]", b"\xff\xfe"],
)
def test_non_records_are_refused_with_a_reason(payload: bytes) -> None:
    with pytest.raises(InvalidEvent) as caught:
        normalise(payload, KEY)
    assert caught.value.reason


@pytest.mark.parametrize("payload", [None, 42, 4.2, object(), {1: 2}, {"verb": {1, 2}}])
def test_non_json_python_values_are_refused(payload: Any) -> None:
    assert outcome(payload) == "invalid"


def test_missing_actor_is_named() -> None:
    statement = dict(XAPI)
    del statement["actor"]
    with pytest.raises(InvalidEvent) as caught:
        normalise(orjson.dumps(statement), KEY)
    assert (caught.value.path, caught.value.reason) == ("actor", "is required")


def test_unrecognisable_objects_say_what_was_expected() -> None:
    with pytest.raises(InvalidEvent) as caught:
        normalise(b'{"hello": "world"}', KEY)
    assert caught.value.path == ""
    assert "xAPI statement" in caught.value.reason and "Caliper" in caught.value.reason


def test_deep_nesting_is_refused_not_crashed() -> None:
    for depth in (500, 5_000, 200_000):
        assert outcome(b"[" * depth + b"]" * depth) == "invalid"
    nested_extension = b'{"http://x.example/e": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    statement = orjson.dumps({**XAPI, "context": {"extensions": {}}}).replace(
        b'"extensions":{}', b'"extensions":' + nested_extension
    )
    assert outcome(statement) == "invalid"


def test_deeply_nested_python_objects_are_refused_not_crashed() -> None:
    value: Any = "leaf"
    for _ in range(100_000):
        value = [value]
    statement = {**XAPI, "context": {"extensions": {"http://x.example/e": value}}}
    del statement["id"]  # the id is then derived from the whole content
    assert outcome(statement) == "invalid"


def test_ten_megabyte_batch_of_statements_normalises() -> None:
    statement = orjson.dumps(XAPI)
    count = 10 * 1024 * 1024 // len(statement) + 1
    batch = b"[" + b",".join([statement] * count) + b"]"
    assert len(batch) > 10 * 1024 * 1024
    events = normalise(batch, KEY)
    assert len(events) == count


def test_ten_megabyte_garbage_is_refused() -> None:
    text = b'{"verb": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    assert outcome(text) == "invalid"
    huge_iri = {**XAPI, "object": {"id": "http://x.example/" + "a" * (10 * 1024 * 1024)}}
    with pytest.raises(InvalidEvent) as caught:
        normalise(orjson.dumps(huge_iri), KEY)
    assert caught.value.path == "object.id"


def test_payloads_over_the_limit_are_refused_before_parsing() -> None:
    with pytest.raises(InvalidEvent) as caught:
        normalise(b" " * (MAX_PAYLOAD_BYTES + 1), KEY)
    assert "limit" in caught.value.reason
    with pytest.raises(InvalidEvent):
        normalise(orjson.dumps(XAPI), KEY, max_bytes=10)


def test_text_bytearray_and_memoryview_inputs_read_the_same() -> None:
    raw = orjson.dumps(XAPI)
    expected = normalise(raw, KEY)
    assert normalise(raw.decode(), KEY) == expected
    assert normalise(bytearray(raw), KEY) == expected
    assert normalise(memoryview(raw), KEY) == expected
    assert normalise(raw, Pseudonymiser(KEY)) == expected


def test_lone_surrogates_in_parsed_input_are_handled() -> None:
    statement = json.loads(json.dumps(XAPI).replace("Tax Tips", "Tax \\ud800Tips"))
    assert outcome(statement) == "events"
    statement["result"] = {"response": "\ud800"}
    (event,) = normalise(statement, KEY)
    assert event.response_hash is not None and len(event.response_hash) == 64


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (XAPI, "xapi"),
        (CALIPER, "caliper"),
        (CALIPER["data"][0], "caliper"),
        (NATIVE, "native"),
        ({"actor": {}, "object": {}}, "xapi"),
        ({"eventTime": "x", "actor": {}, "object": {}}, "caliper"),
        ({"something": 1}, None),
    ],
)
def test_formats_are_told_apart_by_shape(record: dict[str, Any], expected: str | None) -> None:
    assert detect_format(record) == expected
