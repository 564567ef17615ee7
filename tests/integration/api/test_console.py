"""The tutors' console: a real OpenID Provider, the real store and broker, a real receiver."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from api_support import CLASS_A, ApiEnv, InterventionMaker, free_port, serve
from console_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_CLIENT_ID,
    USERS,
    WEB_DIR,
    Receiver,
    authorization_code,
    node_ready,
    provider,
    receiver,
    sign_in,
)

from api.console.exceptions import SignInFailed
from api.console.oidc import OpenIdClient, new_login, pkce_challenge
from api.console.options import ConsoleOptions
from api.console.runtime import class_segment
from api.settings import ApiSettings
from schemas.normalise import pseudonymiser_for
from tests.polling import wait_for
from tutorstream.grafana.boards import dashboards
from tutorstream.grafana.macros import expand_link

pytestmark = pytest.mark.integration

CLASS_IRI = "https://school.example/classes/7b"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def console(api_env: ApiEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The API with its console, signing in at a real provider; yields (console URL, issuer)."""
    why = node_ready()
    if why is not None:
        pytest.fail(f"the console tests need Node and tests/web's packages: {why}")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/console/callback"
    with provider(
        tmp_path_factory.mktemp("oidc"), [callback], "http://127.0.0.1:9/other/callback"
    ) as op:
        base = api_env.settings()
        settings = ApiSettings(
            **{
                **base.model_dump(),
                "pseudonym_key": base.pseudonym_key,
                "console": ConsoleOptions(
                    oidc_issuer=op.issuer,
                    oidc_client_id=CLIENT_ID,
                    oidc_client_secret=CLIENT_SECRET,  # type: ignore[arg-type]
                    cookie_secure=False,
                    webhook_attempts=3,
                    webhook_backoff_s=0.2,
                    webhook_poll_s=0.2,
                    webhook_timeout_s=2.0,
                ),
            }
        )
        with serve(settings, port) as url:
            yield url, op.issuer


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def _events(api_env: ApiEnv, class_id: str, learner_id: str, when: datetime) -> None:
    """Store what the decision saw: 12 quick answers (1 right) and the class's slow ones."""
    with api_env.connect() as conn:
        for index in range(12):
            conn.execute(
                "INSERT INTO events (time, event_id, learner_id, class_id, item_id, event_type, "
                "correct, duration_s, source) VALUES (%s, %s, %s, %s, %s, 'answer_submit', %s, "
                "%s, 'native')",
                (
                    when - timedelta(seconds=40 - index * 3),
                    f"ev-{uuid.uuid4().hex}",
                    learner_id,
                    class_id,
                    f"item-{index}",
                    index == 0,
                    2.0 + (index % 2),
                ),
            )
        for index in range(30):
            conn.execute(
                "INSERT INTO events (time, event_id, learner_id, class_id, item_id, event_type, "
                "correct, duration_s, source) VALUES (%s, %s, %s, %s, 'item-x', 'answer_submit', "
                "true, 60, 'native')",
                (
                    when - timedelta(minutes=20, seconds=index),
                    f"ev-{uuid.uuid4().hex}",
                    f"other-{index}",
                    class_id,
                ),
            )


def test_sign_in_shows_the_tutors_classes_with_a_secure_session(console: tuple[str, str]):
    url, _ = console
    with sign_in(url, "tutor-a") as http:
        home = http.get("/console/")
        assert home.status_code == 200
        assert "Ada Lovelace" in home.text
        assert "class-a" in home.text
        assert "class-b" not in home.text
        cookie = next(c for c in http.cookies.jar if c.name == "tutorstream_console")
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert cookie.path == "/console"
        # Sign-out needs the token, then ends the session.
        assert http.post("/console/logout", follow_redirects=False).status_code == 403
        out = http.post("/console/logout", data={"csrf": http.csrf}, follow_redirects=False)
        assert out.status_code == 303
        http.cookies.clear()
        again = http.get("/console/classes/class-a/", follow_redirects=False)
        assert again.status_code == 303
        assert again.headers["location"].startswith("/console/login")


def test_wrong_audience_forged_and_expired_id_tokens_are_refused(console: tuple[str, str]):
    _, issuer = console
    other_redirect = "http://127.0.0.1:9/other/callback"

    async def check() -> None:
        client = OpenIdClient(issuer, CLIENT_ID, CLIENT_SECRET, "openid", "groups", 10.0)
        other = OpenIdClient(
            issuer,
            OTHER_CLIENT_ID,
            "another-secret-0123456789abcdef0123456789",
            "openid",
            "groups",
            10.0,
        )
        try:
            attempt = new_login("/console/")
            code = await asyncio.to_thread(
                authorization_code,
                issuer,
                OTHER_CLIENT_ID,
                other_redirect,
                "tutor-a",
                attempt.nonce,
                pkce_challenge(attempt.verifier),
                attempt.state,
            )
            token = await other.exchange(code, attempt, other_redirect)
            # The other party's own check passes: the token is real.
            identity = await other.verify(token, attempt.nonce)
            assert identity.subject == "tutor-a"
            with pytest.raises(SignInFailed, match=r"(?i)audience"):
                await client.verify(token, attempt.nonce)
            header, payload, signature = token.split(".")
            claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            claims["aud"] = CLIENT_ID
            forged = ".".join(
                [
                    header,
                    base64.urlsafe_b64encode(orjson.dumps(claims)).decode().rstrip("="),
                    signature,
                ]
            )
            with pytest.raises(SignInFailed, match="not valid"):
                await client.verify(forged, attempt.nonce)
            with pytest.raises(SignInFailed, match="expired"):
                await other.verify(token, attempt.nonce, now=identity.expires_at + 3600)
            with pytest.raises(SignInFailed, match="nonce"):
                await other.verify(token, "another-nonce")
        finally:
            await client.close()
            await other.close()

    asyncio.run(check())


def test_a_callback_with_a_wrong_state_signs_nobody_in(console: tuple[str, str]):
    url, _ = console
    with httpx.Client(base_url=url, follow_redirects=False) as http:
        start = http.get("/console/login")
        assert start.status_code == 303
        answer = http.get("/console/callback", params={"code": "x", "state": "not-the-state"})
        assert answer.status_code == 401
        assert "Sign in again" in answer.text
        start = http.get("/console/login")
        state = httpx.URL(start.headers["location"]).params["state"]
        mixed_up = http.get(
            "/console/callback",
            params={"code": "x", "state": state, "iss": "http://127.0.0.1:9/another"},
        )
        assert mixed_up.status_code == 401
        assert "another provider" in mixed_up.text
        assert "tutorstream_console" not in {c.name for c in http.cookies.jar}
        assert http.get("/console/classes/class-a/").status_code == 303


def test_queue_shows_evidence_and_an_approval_reaches_the_lms_signed(
    console: tuple[str, str],
    api_env: ApiEnv,
    intervention_maker: InterventionMaker,
    hook: Receiver,
):
    url, _ = console
    with sign_in(url, "tutor-a") as http:
        made = http.post(
            "/console/classes/class-a/webhook", data={"csrf": http.csrf, "url": hook.url}
        )
        assert made.status_code == 200, made.text
        secret = made.text.split('id="new-secret">')[1].split("<")[0]
        hook.secret = secret
        learner = uuid.uuid4().hex * 2
        when = datetime.now(UTC)
        _events(api_env, CLASS_A, learner, when)
        record = intervention_maker(CLASS_A, learner_id=learner, time_=when, publish=False)
        page = http.get("/console/classes/class-a/")
        assert page.status_code == 200
        assert "answered 12 items in 2\u20133 s where the class takes about a minute; 1 right" in (
            page.text
        )
        assert record.prompt in page.text
        assert "no roster yet" in page.text
        action = f"/console/classes/class-a/interventions/{record.intervention_id}/approve"
        assert http.post(action, data={"note": "go"}).status_code == 403
        done = http.post(
            action,
            data={"note": "seen in class"},
            headers={"X-CSRF-Token": http.csrf, "X-Console-Fetch": "1"},
        )
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "sent"
    got = wait_for(lambda: hook.received, what="the webhook")
    body = got[0].body
    assert body["type"] == "prompt.approved"
    assert body["data"]["intervention_id"] == record.intervention_id
    assert body["data"]["approved_by"] == "oidc:tutor-a"
    assert got[0].headers["webhook-signature"].startswith("v1,")
    assert hook.refused == []
    # The same message again is recognised by its id and not processed twice.
    replayed = httpx.post(
        hook.url,
        content=got[0].raw,
        headers={k: v for k, v in got[0].headers.items() if k.startswith("webhook-")},
    )
    assert replayed.status_code == 204
    assert hook.duplicates == [got[0].headers["webhook-id"]]
    assert len(hook.received) == 1
    # A tampered body is refused.
    forged = httpx.post(
        hook.url,
        content=got[0].raw.replace(b"seen in class", b"seen in clasS"),
        headers={k: v for k, v in got[0].headers.items() if k.startswith("webhook-")},
    )
    assert forged.status_code == 401
    assert hook.refused == ["bad signature"]
    with api_env.connect() as conn:
        audit = conn.execute(
            "SELECT action, actor, note FROM intervention_actions WHERE intervention_id = %s",
            (record.intervention_id,),
        ).fetchall()
    assert audit == [("approve", "oidc:tutor-a", "seen in class")]


def test_a_tutor_of_another_class_sees_nothing_and_the_attempt_is_audited(
    console: tuple[str, str], api_env: ApiEnv, intervention_maker: InterventionMaker
):
    url, _ = console
    record = intervention_maker(CLASS_A, publish=False)
    with sign_in(url, "tutor-b") as http:
        page = http.get("/console/classes/class-a/")
        assert page.status_code == 403
        assert record.prompt not in page.text
        assert (
            http.get(
                f"/console/classes/class-a/interventions/{record.intervention_id}/card"
            ).status_code
            == 403
        )
        answer = http.post(
            f"/console/classes/class-a/interventions/{record.intervention_id}/approve",
            data={"csrf": http.csrf},
        )
        assert answer.status_code == 403
    with api_env.connect() as conn:
        refused = conn.execute(
            "SELECT what, outcome FROM console_audit WHERE actor = 'oidc:tutor-b' "
            "AND class_id = %s ORDER BY audit_id",
            (CLASS_A,),
        ).fetchall()
        status = conn.execute(
            "SELECT status FROM interventions WHERE intervention_id = %s",
            (record.intervention_id,),
        ).fetchone()
    assert ("approve", "refused") in refused
    assert ("view", "refused") in refused
    assert status == ("pending_review",)


def _read_until(lines: Iterator[str], found: Callable[[str], bool], what: str) -> str:
    """Read lines until one satisfies ``found``; fail after 30 s (heartbeats keep a stream open)."""
    deadline = time.monotonic() + 30
    for line in lines:
        if found(line):
            return line
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{what} did not come within 30 s")


def test_live_feed_brings_new_interventions_and_decisions(
    console: tuple[str, str], api_env: ApiEnv, intervention_maker: InterventionMaker
):
    url, _ = console
    with (
        sign_in(url, "tutor-a") as watcher,
        sign_in(url, "tutor-a") as actor,
        watcher.stream("GET", "/console/classes/class-a/live", timeout=30) as stream,
    ):
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        record = intervention_maker(CLASS_A)
        last_id = _read_until(lines, lambda line: line.startswith("id: "), "the intervention")[4:]
        assert _read_until(lines, lambda line: line.startswith("event: "), "its event") == (
            "event: intervention"
        )
        assert record.intervention_id in next(lines)
        answer = actor.post(
            f"/console/classes/class-a/interventions/{record.intervention_id}/dismiss",
            data={"csrf": actor.csrf},
        )
        assert answer.status_code == 200
        _read_until(
            lines,
            lambda line: record.intervention_id in line and '"status":"dismissed"' in line,
            "the decision",
        )
        # A decision made with an API key shows the same way.
        other = intervention_maker(CLASS_A, publish=False)
        answer = httpx.post(
            f"{url}/classes/{CLASS_A}/interventions/{other.intervention_id}/escalate",
            headers=api_env.auth("tutor"),
        )
        assert answer.status_code == 200
        _read_until(
            lines,
            lambda line: other.intervention_id in line and '"status":"escalated"' in line,
            "the API key's decision",
        )
    # A page that reconnects with the id of its last event gets what it missed meanwhile.
    with sign_in(url, "tutor-a") as again:
        with again.stream("GET", "/console/classes/class-a/live", timeout=30) as probe:
            lines = probe.iter_lines()
            assert next(lines).startswith("retry:")
            missed = intervention_maker(CLASS_A)
            # Seen live here first: the API's feed has it, so only a replay brings it again.
            _read_until(lines, lambda line: missed.intervention_id in line, "the live record")
        with again.stream(
            "GET", "/console/classes/class-a/live", headers={"Last-Event-ID": last_id}, timeout=30
        ) as stream:
            _read_until(
                stream.iter_lines(),
                lambda line: missed.intervention_id in line,
                "the missed intervention on reconnecting",
            )


def test_a_bad_roster_row_imports_nothing_and_a_good_one_names_learners(
    console: tuple[str, str], api_env: ApiEnv, intervention_maker: InterventionMaker
):
    url, _ = console
    class_id = CLASS_IRI
    segment = class_segment(class_id)
    assert "/" not in segment
    with sign_in(url, "tutor-a") as http:
        # tutor-a's groups do not name this class yet: 403 and nothing imported.
        bad = "learner,name\nada@example.edu,Ada Byron\nbob@example.edu,\n"
        refused = http.post(
            f"/console/classes/{segment}/roster",
            data={"csrf": http.csrf},
            files={"file": ("roster.csv", bad, "text/csv")},
        )
        assert refused.status_code == 403
    with sign_in(url, "tutor-a") as http:
        answer = http.post(
            "/console/classes/class-a/roster",
            data={"csrf": http.csrf},
            files={"file": ("roster.csv", bad, "text/csv")},
        )
        assert answer.status_code == 400
        assert "row 3, column name: is empty" in answer.text
        with api_env.connect() as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM roster WHERE class_id = %s", (CLASS_A,)
            ).fetchone()
        assert count == 0
        good = "learner,name\nmailto:ada@example.edu,Ada Byron\nnative-7,Bob Stone\n"
        answer = http.post(
            "/console/classes/class-a/roster",
            data={"csrf": http.csrf},
            files={"file": ("roster.csv", good, "text/csv")},
        )
        assert answer.status_code == 200
        assert "Imported 2 learners" in answer.text
        pseudonym = pseudonymiser_for(api_env.settings().pseudonym_key_bytes()).native_learner(
            "native-7"
        )
        record = intervention_maker(CLASS_A, learner_id=pseudonym, publish=False)
        page = http.get("/console/classes/class-a/")
        assert "Bob Stone" in page.text
        assert record.intervention_id in page.text
    with api_env.connect() as conn:
        sealed = conn.execute(
            "SELECT entry_sealed FROM roster WHERE class_id = %s AND learner_id = %s",
            (CLASS_A, pseudonym),
        ).fetchone()
    assert sealed is not None and b"Bob Stone" not in bytes(sealed[0])
    pushed = httpx.post(
        f"{url}/console/api/classes/{segment}/roster",
        content=orjson.dumps({"learners": [{"learner": "native-9", "name": "Cy Young"}]}),
        headers=api_env.auth("admin"),
    )
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {"class_id": class_id, "learners": 1}
    refused_push = httpx.post(
        f"{url}/console/api/classes/{segment}/roster",
        content=b'{"learners": [{"learner": "x", "name": ""}]}',
        headers=api_env.auth("admin"),
    )
    assert refused_push.status_code == 400
    assert "learners[0].name" in refused_push.json()["error"]
    assert (
        httpx.post(
            f"{url}/console/api/classes/{segment}/roster",
            content=b'{"learners": []}',
            headers=api_env.auth("tutor"),
        ).status_code
        == 403
    )


def test_a_failing_endpoint_is_retried_then_dead_lettered_and_shown(
    console: tuple[str, str], intervention_maker: InterventionMaker, hook: Receiver
):
    url, _ = console
    hook.status = 500
    with sign_in(url, "tutor-a") as http:
        made = http.post(
            "/console/classes/class-a/webhook", data={"csrf": http.csrf, "url": hook.url}
        )
        hook.secret = made.text.split('id="new-secret">')[1].split("<")[0]
        record = intervention_maker(CLASS_A, publish=False)
        started = datetime.now(UTC)
        done = http.post(
            f"/console/classes/class-a/interventions/{record.intervention_id}/approve",
            data={"csrf": http.csrf},
        )
        # The console answered without waiting for the LMS.
        assert done.status_code == 200
        assert datetime.now(UTC) - started < timedelta(seconds=2)
        page = wait_for(
            lambda: (
                "delivery-dead" in (p := http.get("/console/classes/class-a/settings")).text and p
            ),
            what="the dead letter",
        )
        assert "<td>dead</td><td>3</td><td>the endpoint answered 500</td>" in page.text
        assert "could not be delivered" in http.get("/console/classes/class-a/").text
    # Every try was signed anew and carried the same id, so the LMS can drop a replay.
    assert len(hook.failed_ids) == 3 and len(set(hook.failed_ids)) == 1, hook.failed_ids
    assert hook.refused == []


def test_an_approval_with_an_api_key_also_reaches_the_lms_with_the_lms_identifier(
    console: tuple[str, str],
    api_env: ApiEnv,
    intervention_maker: InterventionMaker,
    hook: Receiver,
):
    url, _ = console
    with sign_in(url, "tutor-a") as http:
        made = http.post(
            "/console/classes/class-a/webhook", data={"csrf": http.csrf, "url": hook.url}
        )
        hook.secret = made.text.split('id="new-secret">')[1].split("<")[0]
        http.post(
            "/console/classes/class-a/roster",
            data={"csrf": http.csrf},
            files={"file": ("roster.csv", "learner,name\nnative-42,Dee Marsh\n", "text/csv")},
        )
    pseudonym = pseudonymiser_for(api_env.settings().pseudonym_key_bytes()).native_learner(
        "native-42"
    )
    record = intervention_maker(CLASS_A, learner_id=pseudonym, publish=False)
    answer = httpx.post(
        f"{url}/classes/{CLASS_A}/interventions/{record.intervention_id}/approve",
        headers=api_env.auth("tutor"),
    )
    assert answer.status_code == 200, answer.text
    got = wait_for(lambda: hook.received, what="the webhook")
    data = got[0].body["data"]
    assert data["intervention_id"] == record.intervention_id
    assert data["learner"] == "native-42"
    assert data["learner_id"] == pseudonym
    assert data["approved_by"] == api_env.key_ids["tutor"]


def test_in_a_browser_a_tutor_signs_in_watches_reads_and_approves(
    console: tuple[str, str],
    api_env: ApiEnv,
    intervention_maker: InterventionMaker,
    hook: Receiver,
    tmp_path: Path,
):
    """Chromium (Debian's, driven by playwright-core) through sign-in, the live queue and axe.

    Screenshots go to ``TUTORSTREAM_CONSOLE_SCREENSHOTS`` when it names a folder (the ones in
    docs/screenshots were made so), to the test's temporary folder otherwise.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}")
    url, _ = console
    learner_ref = f"browser-{uuid.uuid4().hex[:8]}"
    learner = pseudonymiser_for(api_env.settings().pseudonym_key_bytes()).native_learner(
        learner_ref
    )
    with sign_in(url, "tutor-a") as http:
        made = http.post(
            "/console/classes/class-a/webhook", data={"csrf": http.csrf, "url": hook.url}
        )
        hook.secret = made.text.split('id="new-secret">')[1].split("<")[0]
        http.post(
            "/console/classes/class-a/roster",
            data={"csrf": http.csrf},
            files={"file": ("roster.csv", f"learner,name\n{learner_ref},Eve Park\n", "text/csv")},
        )
    when = datetime.now(UTC)
    _events(api_env, CLASS_A, learner, when)
    shots = os.environ.get("TUTORSTREAM_CONSOLE_SCREENSHOTS") or str(tmp_path)
    config = tmp_path / "browser.json"
    config.write_text(
        json.dumps(
            {
                "url": url,
                "login": "tutor-a",
                "password": USERS["tutor-a"]["password"],
                "segment": "class-a",
                "screenshots": str(Path(shots).resolve()),
                "other_login": "tutor-b",
                "other_password": USERS["tutor-b"]["password"],
            }
        )
    )
    driver = subprocess.Popen(
        ["node", str(WEB_DIR / "browser.mjs"), str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert driver.stdin is not None and driver.stdout is not None
    try:
        first = json.loads(driver.stdout.readline() or '{"step": "exited"}')
        assert first["step"] == "watching", first
        record = intervention_maker(CLASS_A, learner_id=learner, time_=when)
        driver.stdin.write(json.dumps({"intervention_id": record.intervention_id}) + "\n")
        driver.stdin.flush()
        result = json.loads(driver.stdout.readline() or '{"step": "exited"}')
        assert driver.wait(timeout=60) == 0, result
    finally:
        if driver.poll() is None:
            driver.kill()
    assert result["step"] == "done", result
    assert (
        "answered 12 items in 2\u20133 s where the class takes about a minute; 1 right"
        in (result["evidence"])
    )
    assert "Eve Park" in result["heading"]
    assert result["decision"] == "sent by oidc:tutor-a"
    assert {name: found for name, found in result["violations"].items() if found} == {}
    assert len(result["violations"]) == 11
    other = result["other"]
    assert other["page_status"] == 403 and other["action_status"] == 403, other
    assert "You are not a tutor of this class." in other["page_text"]
    assert "Eve Park" not in other["page_text"] and record.prompt not in other["page_text"]
    got = wait_for(lambda: hook.received, what="the webhook")
    assert got[0].body["data"]["intervention_id"] == record.intervention_id
    assert got[0].body["data"]["learner"] == learner_ref
    with api_env.connect() as conn:
        audit = conn.execute(
            "SELECT action, actor, note FROM intervention_actions WHERE intervention_id = %s",
            (record.intervention_id,),
        ).fetchall()
    assert audit == [("approve", "oidc:tutor-a", "Checked with them in class.")]
    with api_env.connect() as conn:
        refused = conn.execute(
            "SELECT what FROM console_audit WHERE actor = 'oidc:tutor-b' AND outcome = 'refused' "
            "AND at > %s",
            (when,),
        ).fetchall()
    assert ("view",) in refused and ("escalate",) in refused


def test_the_reporting_role_cannot_read_the_roster_or_webhook_secrets(api_env: ApiEnv):
    """Grafana's role reads the store's tables but not names, even sealed, nor secrets."""
    name = f"reader_{uuid.uuid4().hex[:10]}"
    with api_env.connect() as admin:
        admin.execute(f"CREATE ROLE {name} IN ROLE tutorstream_reader")
        try:
            with admin.transaction():
                admin.execute(f"SET LOCAL ROLE {name}")
                admin.execute("SELECT count(*) FROM console_audit").fetchone()
            for table in ("roster", "class_webhooks"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege), admin.transaction():
                    admin.execute(f"SET LOCAL ROLE {name}")
                    admin.execute(f"SELECT count(*) FROM {table}")
        finally:
            admin.execute("RESET ROLE")
            admin.execute(f"DROP ROLE {name}")


def test_an_endpoint_that_answers_too_late_gets_the_same_message_again(
    console: tuple[str, str], api_env: ApiEnv, intervention_maker: InterventionMaker, hook: Receiver
):
    url, _ = console
    hook.delay_first_s = 3.0  # the sender waits 2 s
    with sign_in(url, "tutor-a") as http:
        made = http.post(
            "/console/classes/class-a/webhook", data={"csrf": http.csrf, "url": hook.url}
        )
        hook.secret = made.text.split('id="new-secret">')[1].split("<")[0]
        record = intervention_maker(CLASS_A, publish=False)
        done = http.post(
            f"/console/classes/class-a/interventions/{record.intervention_id}/approve",
            data={"csrf": http.csrf},
        )
        assert done.status_code == 200
    wait_for(lambda: hook.duplicates, what="the retry after the timeout")
    assert [r.headers["webhook-id"] for r in hook.received] == hook.duplicates
    with api_env.connect() as conn:
        row = wait_for(
            lambda: conn.execute(
                "SELECT status, attempts FROM webhook_deliveries WHERE intervention_id = %s "
                "AND status = 'delivered'",
                (record.intervention_id,),
            ).fetchone(),
            what="the delivery",
        )
    assert row == ("delivered", 2)


def _board_links(board: dict[str, Any]) -> list[tuple[str, str]]:
    """Every link of a board (header, panels, data links) as (where, URL)."""
    found = [(f"board {board['title']}", link["url"]) for link in board.get("links", [])]
    for panel in board["panels"]:
        where = f"{board['title']} / {panel['title']}"
        found += [(where, link["url"]) for link in panel.get("links", [])]
        config = panel.get("fieldConfig", {})
        found += [(where, link["url"]) for link in config.get("defaults", {}).get("links", [])]
        for override in config.get("overrides", []):
            for prop in override["properties"]:
                if prop["id"] == "links":
                    found += [
                        (f"{where} ({override['matcher']['options']})", link["url"])
                        for link in prop["value"]
                    ]
    return found


def test_every_console_link_of_the_grafana_boards_opens_its_page(
    console: tuple[str, str], api_env: ApiEnv, intervention_maker: InterventionMaker
):
    """The boards' links, expanded as Grafana expands them, open real console pages."""
    url, _ = console
    (class_id,) = USERS["tutor-iri"]["groups"]
    learner = f"learner-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    _events(api_env, class_id, learner, now)
    intervention_maker(class_id=class_id, learner_id=learner)
    links = [
        (where, link)
        for board in dashboards(url).values()
        for where, link in _board_links(board)
        if link.startswith("${console")
    ]
    pages = {link.split("/console/open/")[1].split("?")[0] for _, link in links}
    assert pages == {"queue", "overview", "learner"}
    assert {where.split(" / ")[0].removeprefix("board ") for where, _ in links} == {
        "Class overview",
        "Learner drill-down",
        "Intervention outcomes",
    }
    variables = {
        "console": url,
        "class": class_id,
        "learner": learner,
        "__value.raw": learner,
        "__url_time_range": "from=now-24h&to=now",
    }
    expected = {
        "queue": f"/console/classes/{class_segment(class_id)}/",
        "overview": f"/console/classes/{class_segment(class_id)}/overview",
        "learner": f"/console/classes/{class_segment(class_id)}/learners/{learner}",
    }
    with sign_in(url, "tutor-iri") as http:
        for where, link in links:
            opened = expand_link(link, variables)
            assert opened.startswith(f"{url}/console/open/"), (where, opened)
            answer = http.get(opened)
            assert answer.status_code == 200, (where, opened, answer.status_code)
            page = link.split("/console/open/")[1].split("?")[0]
            assert answer.url.path == expected[page], (where, str(answer.url))
            assert html.escape(class_id) in answer.text or learner in answer.text
    # Without a session, the page asks for a sign-in and comes back to the same page after.
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        first = anonymous.get(expand_link(links[0][1], variables))
        assert first.status_code == 303
        then = anonymous.get(first.headers["location"])
        assert then.status_code == 303 and then.headers["location"].startswith("/console/login")


def test_a_link_without_its_class_or_learner_says_what_it_lacks(console: tuple[str, str]):
    url, _ = console
    with sign_in(url, "tutor-a") as http:
        no_class = http.get("/console/open/queue")
        assert no_class.status_code == 400 and "names no class" in no_class.text
        no_learner = http.get("/console/open/learner", params={"class": CLASS_A})
        assert no_learner.status_code == 400 and "names no learner" in no_learner.text
        unknown = http.get("/console/open/settings-of-everyone", params={"class": CLASS_A})
        assert unknown.status_code == 404
        other = http.get("/console/open/queue", params={"class": "class-b"})
        assert other.status_code == 403
