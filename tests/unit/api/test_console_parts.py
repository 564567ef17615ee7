"""The console's parts that need no service: segments, rosters, evidence, signatures, cookies."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response

from api.console.evidence import describe
from api.console.exceptions import RosterError
from api.console.oidc import Identity, classes_of, pkce_challenge
from api.console.pages import followed
from api.console.roster import RosterEntry, Sealer, parse_csv
from api.console.runtime import class_from_segment, class_segment
from api.console.session import SESSION_COOKIE, CookieSigner
from api.console.webhooks import sign
from api.settings import ApiSettings, Mode
from schemas.pseudonym import Pseudonymiser

pytestmark = pytest.mark.unit


@given(st.text(min_size=1, max_size=80))
def test_any_class_id_survives_a_path_segment(class_id: str):
    segment = class_segment(class_id)
    assert "/" not in segment and "%" not in segment
    assert class_from_segment(segment) == class_id


def test_iri_class_ids_and_malformed_segments():
    assert class_segment("class-a") == "class-a"
    assert class_segment("https://s.example/c/7b") == "https~3A~2F~2Fs.example~2Fc~2F7b"
    for bad in ("a/b", "~4", "~zz", "a b", "~41"):  # "~41" is "A", which is written as is
        assert class_from_segment(bad) is None


def test_a_roster_row_that_does_not_parse_names_row_and_column():
    with pytest.raises(RosterError, match=r"^row 3, column name: is empty$"):
        parse_csv("learner,name\nmailto:a@s.example,Ada\nmailto:b@s.example,  \n")
    with pytest.raises(RosterError, match=r"^row 1, column learner: the header lacks"):
        parse_csv("id,name\n1,Ada\n")
    with pytest.raises(RosterError, match=r"^row 2: has 3 cells where the header has 2$"):
        parse_csv("learner,name\n1,Ada,extra\n")
    with pytest.raises(RosterError, match=r"^row 3, column learner: repeats the learner of row 2"):
        parse_csv("learner,name\n1,Ada\n1,Bob\n")
    with pytest.raises(RosterError, match=r"^row 2, column kind: must be one of"):
        parse_csv("learner,name,kind\n1,Ada,email\n")


def test_roster_entries_map_to_the_pipelines_pseudonyms():
    key = b"k" * 32
    pseudonymiser = Pseudonymiser(key)
    entries = parse_csv(
        "\ufefflearner,name,kind\nmailto:Ada@S.example,Ada,\nhttps://lms/u/1,Bob,\n7,Cy,\n"
        "https://lms|u2,Dee,account\n"
    )
    assert [e.pseudonym(pseudonymiser) for e in entries] == [
        pseudonymiser.mbox("mailto:Ada@S.example"),
        pseudonymiser.caliper_actor("https://lms/u/1"),
        pseudonymiser.native_learner("7"),
        pseudonymiser.account("https://lms", "u2"),
    ]
    assert RosterEntry("x", "y", "openid").pseudonym(pseudonymiser) == (
        pseudonymiser.xapi_identifier(openid="x")
    )


def test_sealed_names_open_only_with_their_key_and_learner():
    sealer = Sealer(b"roster-key-0123456789abcdef012345", "roster names")
    nonce, sealed = sealer.seal("Ada Byron", "class-a\x1fp1")
    assert b"Ada" not in sealed
    assert sealer.open(nonce, sealed, "class-a\x1fp1") == "Ada Byron"
    with pytest.raises(RosterError):
        sealer.open(nonce, sealed, "class-a\x1fp2")
    with pytest.raises(RosterError):
        Sealer(b"another-key-0123456789abcdef01234", "roster names").open(
            nonce, sealed, "class-a\x1fp1"
        )


def test_evidence_in_words():
    events = [
        {"event_type": "answer_submit", "correct": i == 0, "duration_s": 2.0 + i % 2}
        for i in range(12)
    ] + [{"event_type": "hint_request"}] * 3
    words = describe(events, 58.0, "gaming", 0.91).words
    assert words.startswith(
        "answered 12 items in 2\u20133 s where the class takes about a minute; 1 right; "
        "asked for 3 hints; the model sees"
    )
    assert words.endswith("(91% sure)")
    assert describe([], None, "wheel_spinning", 0.5).words.startswith(
        "no answer in the recent window"
    )


def test_webhook_signature_matches_the_standard_webhooks_example():
    # The example of the Standard Webhooks specification and its reference libraries.
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_pkce_challenge_matches_rfc_7636():
    assert (
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_classes_claim_as_list_or_string():
    assert classes_of({"groups": ["a", "", 3, "b"]}, "groups") == {"a", "b"}
    assert classes_of({"roles": "a b,c"}, "roles") == {"a", "b", "c"}
    assert classes_of({}, "groups") == frozenset()


def _request(cookie: str) -> Request:
    return Request(
        {"type": "http", "headers": [(b"cookie", f"{SESSION_COOKIE}={cookie}".encode())]}
    )


def test_a_forged_or_expired_session_cookie_is_no_session():
    signer = CookieSigner(b"session-key-0123456789abcdef0123456", 3600, secure=True)
    response = Response()
    identity = Identity("t1", "Ada", frozenset({"class-a"}), int(time.time()) + 600)
    session = signer.start_session(response, identity)
    header = response.headers["set-cookie"]
    assert "HttpOnly" in header and "Secure" in header and "SameSite=lax" in header
    value = header.split(";")[0].split("=", 1)[1]
    assert signer.session(_request(value)) == session
    body, mac = value.split(".")
    assert signer.session(_request(f"{body}x.{mac}")) is None
    other = CookieSigner(b"another-key-0123456789abcdef012345", 3600, secure=True)
    assert other.session(_request(value)) is None
    expired = Response()
    signer.start_session(expired, Identity("t1", "Ada", frozenset(), int(time.time()) - 1))
    stale = expired.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert signer.session(_request(stale)) is None


def test_production_refuses_development_console_secrets():
    strong = "p" * 40
    with pytest.raises(ValueError, match="TUTORSTREAM_ROSTER_KEY"):
        ApiSettings(mode=Mode.PRODUCTION, pseudonym_key=strong, roster_key="short")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="TUTORSTREAM_CONSOLE__SESSION_KEY"):
        ApiSettings(
            mode=Mode.PRODUCTION,
            pseudonym_key=strong,  # type: ignore[arg-type]
            console={"oidc_issuer": "https://idp.example"},  # type: ignore[arg-type]
        )
    settings = ApiSettings(mode=Mode.PRODUCTION, pseudonym_key=strong)  # type: ignore[arg-type]
    assert settings.roster_key_bytes() is None
    assert ApiSettings().roster_key_bytes() is not None


def test_what_followed_an_intervention():
    start = 1000.0
    events = [
        {"time": start - 5, "event_type": "answer_submit", "correct": False, "duration_s": 2.0},
        {"time": start + 1, "event_type": "hint_request", "correct": None, "duration_s": None},
        {"time": start + 2, "event_type": "answer_submit", "correct": True, "duration_s": 30.0},
        {"time": start + 3, "event_type": "answer_submit", "correct": False, "duration_s": 40.0},
    ]
    assert followed(events, start) == "1 of the next 2 answers right, typically 40 s each"
    assert followed(events, start + 10) == "no answer since"
