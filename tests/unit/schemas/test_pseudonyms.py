from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest
from contract_data import KEY, load_fixture
from hypothesis import given
from hypothesis import strategies as st

from schemas.normalise import normalise
from schemas.pseudonym import (
    PSEUDONYM_LENGTH,
    IdentifierKind,
    Pseudonymiser,
    mbox_sha1sum_of,
    pseudonymise,
)

pytestmark = pytest.mark.unit

identifiers = st.text(min_size=1, max_size=60)
keys = st.binary(min_size=1, max_size=100)


@given(identifier=identifiers, key=keys, kind=st.sampled_from(list(IdentifierKind)))
def test_same_identifier_and_key_give_the_same_pseudonym(
    identifier: str, key: bytes, kind: IdentifierKind
) -> None:
    first = Pseudonymiser(key).pseudonym(kind, identifier)
    assert first == Pseudonymiser(key).pseudonym(kind, identifier)
    assert first == pseudonymise(kind, identifier, key)
    assert len(first) == PSEUDONYM_LENGTH
    assert identifier not in first or len(identifier) < 4


@given(identifier=identifiers, key=keys, other=keys)
def test_a_different_key_gives_a_different_pseudonym(
    identifier: str, key: bytes, other: bytes
) -> None:
    if key.ljust(64, b"\0") == other.ljust(64, b"\0"):
        return  # HMAC pads short keys with zeros, so these are the same key
    kind = IdentifierKind.NATIVE
    assert Pseudonymiser(key).pseudonym(kind, identifier) != Pseudonymiser(other).pseudonym(
        kind, identifier
    )


@given(identifier=identifiers, key=keys)
def test_pseudonyms_are_hmac_sha256_of_kind_and_identifier(identifier: str, key: bytes) -> None:
    message = f"caliper\x1f{identifier}".encode("utf-8", "surrogatepass")
    expected = hmac.new(key, message, hashlib.sha256).hexdigest()
    assert Pseudonymiser(key).caliper_actor(identifier) == expected


def test_kinds_keep_equal_strings_apart() -> None:
    pseudonymiser = Pseudonymiser(KEY)
    names = {
        pseudonymiser.pseudonym(kind, "https://example.edu/users/1") for kind in IdentifierKind
    }
    assert len(names) == len(IdentifierKind)


def test_an_mbox_and_its_sha1sum_are_the_same_learner() -> None:
    pseudonymiser = Pseudonymiser(KEY)
    mbox = "mailto:Learner.One@School.Example.EDU"
    digest = hashlib.sha1(b"mailto:Learner.One@school.example.edu").hexdigest()
    assert mbox_sha1sum_of(mbox) == digest
    assert pseudonymiser.xapi_agent({"mbox": mbox}) == pseudonymiser.xapi_agent(
        {"mbox_sha1sum": digest.upper()}
    )
    # The domain is case-insensitive, the local part is not.
    assert pseudonymiser.xapi_agent({"mbox": "mailto:Learner.One@school.example.edu"}) == (
        pseudonymiser.xapi_agent({"mbox": mbox})
    )
    assert pseudonymiser.xapi_agent({"mbox": "mailto:learner.one@school.example.edu"}) != (
        pseudonymiser.xapi_agent({"mbox": mbox})
    )


def test_accounts_openids_and_parsed_or_typed_agents_agree() -> None:
    pseudonymiser = Pseudonymiser(KEY)
    account = {"account": {"homePage": "https://lms.example.edu", "name": "s1"}}
    assert pseudonymiser.xapi_agent(account) == pseudonymiser.xapi_identifier(
        home_page="https://lms.example.edu", account_name="s1"
    )
    assert pseudonymiser.xapi_agent(account) != pseudonymiser.xapi_agent(
        {"account": {"homePage": "https://lms.example.edu/", "name": "s1"}}
    )
    assert pseudonymiser.xapi_agent({"openid": "https://id.example/1"}) == (
        pseudonymiser.pseudonym(IdentifierKind.OPENID, "https://id.example/1")
    )
    with pytest.raises(ValueError, match="no Inverse Functional Identifier"):
        pseudonymiser.xapi_agent({"name": "nobody"})


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        Pseudonymiser(b"")


@pytest.mark.parametrize(
    ("payload", "raw_identifiers"),
    [
        (
            load_fixture("xapi/appendix_d_statement.json"),
            ["example@example.com", "Example Learner"],
        ),
        (load_fixture("canvas/quiz_submitted.json"), ["21070000000987123", "oxana"]),
        (
            load_fixture("caliper/v1p2/caliperEventAssessmentItemCompleted.json"),
            ["users/554433"],
        ),
    ],
    ids=["xapi", "canvas", "caliper"],
)
def test_raw_identifiers_never_reach_the_event(payload: object, raw_identifiers: list[str]) -> None:
    (event,) = normalise(orjson.dumps(payload), KEY)
    dumped = event.model_dump_json()
    for raw in raw_identifiers:
        assert raw not in dumped
    assert len(event.learner_id) == PSEUDONYM_LENGTH
