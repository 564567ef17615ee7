from __future__ import annotations

import pytest

from schemas.formats import (
    child,
    duration_seconds,
    is_iri,
    is_known_iri,
    is_language_tag,
    is_uuid,
    json_type,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("http://adlnet.gov/expapi/verbs/answered", True),
        ("urn:uuid:c51570e4-f8ed-4c18-bb3a-dfe51b2cc594", True),
        ("https://example.org/ü", True),
        ("ab=c://should.fail.com", False),
        ("no-scheme", False),
        ("http://with space", False),
        ("", False),
        (42, False),
    ],
)
def test_iris(value: object, valid: bool) -> None:
    assert is_iri(value) is valid
    if isinstance(value, str):
        assert is_known_iri(value) is valid
        assert is_known_iri(value) is valid  # the remembered verdict agrees


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("en", True),
        ("en-US", True),
        ("zh-Hant", True),
        ("sr-Latn-RS", True),
        ("es-419", True),
        ("cmn", True),
        ("i-klingon", True),
        ("x-private", True),
        ("de-CH-1901", True),
        ("a12345", False),
        ("a12345678", False),
        ("en_US", False),
        ("", False),
        ("en-" + "a" * 200, False),
    ],
)
def test_language_tags(value: str, valid: bool) -> None:
    assert is_language_tag(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("fd41c918-b88b-4b20-a0a5-a4c32391aaa0", True),
        ("FD41C918-B88B-4B20-A0A5-A4C32391AAA0", True),
        ("AA97B177-9383-4934-8543-0F91A7A028368", False),
        ("MA97B177-9383-4934-8543-0F91A7A02836", False),
        ("fd41c918b88b4b20a0a5a4c32391aaa0", False),
    ],
)
def test_uuids(value: str, valid: bool) -> None:
    assert is_uuid(value) is valid


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT12.34S", 12.34),
        ("PT0S", 0.0),
        ("PT1M30S", 90.0),
        ("PT4H35M59.14S", 16559.14),
        ("P4W", 4 * 7 * 86400.0),
        ("P1D", 86400.0),
        ("PT1,5S", 1.5),
        ("P", None),
        ("PT", None),
        ("P1DT", None),
        ("P4W1D", None),
        ("PT.5S", None),
        ("PT5.S", None),
        ("PT1e5S", None),
        ("PT-1S", None),
        ("PT\u0661\u0662S", None),  # Arabic-Indic digits are not ISO 8601 digits
        ("P16559.14S", None),
    ],
)
def test_durations(value: str, seconds: float | None) -> None:
    result = duration_seconds(value)
    assert result == pytest.approx(seconds) if seconds is not None else result is None


def test_paths_quote_keys_that_are_not_names() -> None:
    assert child("", "actor") == "actor"
    assert child("context", "extensions") == "context.extensions"
    assert (
        child("context.extensions", "https://x.example/a")
        == 'context.extensions["https://x.example/a"]'
    )
    assert child("a", 'say "hi"') == 'a["say \\"hi\\""]'


def test_json_type_names() -> None:
    values: tuple[object, ...] = (None, True, 1, 1.5, "s", [], {})
    assert [json_type(value) for value in values] == [
        "null",
        "boolean",
        "integer",
        "number",
        "string",
        "array",
        "object",
    ]
