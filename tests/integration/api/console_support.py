"""Helpers of the console tests: a real OpenID Provider, the API on a port, a webhook receiver.

The provider is npm ``oidc-provider`` run by ``tests/web/provider.mjs`` (its packages come from
``make setup``); the receiver is a real HTTP server that checks Standard Webhooks signatures on
its own (not with the product's code) and refuses a replayed message id.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from api_support import free_port

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
CLIENT_ID = "tutorstream-console"
CLIENT_SECRET = "console-test-secret-0123456789abcdef0123"
OTHER_CLIENT_ID = "another-app"
USERS: dict[str, dict[str, Any]] = {
    "tutor-a": {"password": "pass-a-123", "name": "Ada Lovelace", "groups": ["class-a"]},
    "tutor-b": {"password": "pass-b-123", "name": "Bea Otherclass", "groups": ["class-b"]},
    # A class id that is an IRI with every character a URL treats specially.
    "tutor-iri": {
        "password": "pass-iri-123",
        "name": "Ida Iri",
        "groups": ["https://school.example/classes/7c?term=2026&set=a b#top"],
    },
}


@dataclass
class Provider:
    """A running OpenID Provider."""

    issuer: str
    process: subprocess.Popen[str]


def node_ready() -> str | None:
    """Return why the Node-based tests cannot run here, or ``None`` when they can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (WEB_DIR / "node_modules" / "oidc-provider").is_dir():
        return "tests/web's npm packages are not installed: run make setup"
    return None


@contextlib.contextmanager
def provider(
    tmp: Path, redirect_uris: list[str], other_redirect: str, id_token_ttl_s: int = 3600
) -> Iterator[Provider]:
    """Start the provider with the console's client, another client, and the test users."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    config = {
        "port": port,
        "issuer": issuer,
        "id_token_ttl_s": id_token_ttl_s,
        "users": USERS,
        "clients": [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
                "post_logout_redirect_uris": [u.replace("/callback", "/") for u in redirect_uris],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            },
            {
                "client_id": OTHER_CLIENT_ID,
                "client_secret": "another-secret-0123456789abcdef0123456789",
                "redirect_uris": [other_redirect],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            },
        ],
    }
    path = tmp / f"provider-{port}.json"
    path.write_text(json.dumps(config))
    process = subprocess.Popen(
        ["node", str(WEB_DIR / "provider.mjs"), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while True:
            line = process.stdout.readline()
            if line.startswith("ready "):
                break
            if not line and process.poll() is not None:
                raise RuntimeError("the OpenID Provider exited before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenID Provider was not ready within 30 s")
        # Keep reading its output so a full pipe never blocks it.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield Provider(issuer, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


_FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


@contextlib.contextmanager
def sign_in(base_url: str, login: str, password: str | None = None) -> Iterator[httpx.Client]:
    """Sign in through the provider's own login page, as a browser would; return the client.

    The client keeps the console's cookies; its ``csrf`` attribute holds the session's token.
    """
    http = httpx.Client(base_url=base_url, follow_redirects=True, timeout=30)
    page = http.get("/console/login")
    assert page.status_code == 200, page.text
    action = _FORM_ACTION.search(page.text)
    assert action is not None, page.text
    done = http.post(
        str(page.url.join(action.group(1))),
        data={"login": login, "password": password or USERS[login]["password"]},
    )
    assert done.status_code == 200, done.text
    found = re.search(r'name="csrf" value="([^"]+)"', done.text)
    http.csrf = found.group(1) if found else ""  # type: ignore[attr-defined]
    try:
        yield http
    finally:
        http.close()


def authorization_code(
    issuer: str,
    client_id: str,
    redirect_uri: str,
    login: str,
    nonce: str,
    verifier_challenge: str,
    state: str,
) -> str:
    """Sign in at the provider for ``client_id`` and return the code it sends back (no exchange)."""
    with httpx.Client(follow_redirects=False, timeout=30) as http:
        answer = http.get(
            f"{issuer}/auth",
            params={
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid profile groups",
                "state": state,
                "nonce": nonce,
                "code_challenge": verifier_challenge,
                "code_challenge_method": "S256",
            },
        )
        for _ in range(10):
            location = answer.headers.get("location", "")
            if location.startswith(redirect_uri):
                found = re.search(r"[?&]code=([^&]+)", location)
                assert found is not None, location
                return found.group(1)
            if answer.status_code in (302, 303):
                answer = http.get(httpx.URL(str(answer.url)).join(location))
                continue
            action = _FORM_ACTION.search(answer.text)
            assert action is not None, answer.text
            answer = http.post(
                str(answer.url.join(action.group(1))),
                data={"login": login, "password": USERS[login]["password"]},
            )
        raise AssertionError("the provider never sent the code back")


@dataclass
class Received:
    """One webhook the receiver accepted (its signature checked)."""

    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes


@dataclass
class Receiver:
    """A real HTTP endpoint of the LMS: checks signatures, drops replays, or fails on purpose.

    ``delay_first_s`` makes the first accepted delivery answer that late (past the sender's
    timeout): the sender then tries again with the same id, which the receiver drops.
    """

    secret: str = ""
    status: int = 200
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    failed_ids: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    delay_first_s: float = 0.0
    url: str = ""

    def verify(self, headers: dict[str, str], body: bytes) -> str | None:
        """Return why a delivery is refused, or ``None`` when its signature holds."""
        message_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not (message_id and timestamp.isdigit() and signatures):
            return "missing headers"
        if abs(time.time() - int(timestamp)) > 300:
            return "timestamp outside the tolerance"
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        expected = base64.b64encode(
            hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        ).decode()
        if not any(
            version == "v1" and hmac.compare_digest(value, expected)
            for version, _, value in (part.partition(",") for part in signatures.split())
        ):
            return "bad signature"
        return None


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    """Serve a :class:`Receiver` on a free loopback port."""
    state = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            why = state.verify(headers, body)
            if state.status != 200:
                # Failing on purpose, after checking the signature: the sender must retry.
                if why is None:
                    state.failed_ids.append(headers["webhook-id"])
                else:
                    state.refused.append(why)
                self.send_response(state.status)
                self.end_headers()
                return
            if why is not None:
                state.refused.append(why)
                self.send_response(401)
                self.end_headers()
                return
            if headers["webhook-id"] in state.seen:
                # A replay (or a retry after an answer the sender never read): acknowledged,
                # never processed twice.
                state.duplicates.append(headers["webhook-id"])
                self.send_response(204)
                self.end_headers()
                return
            state.seen.add(headers["webhook-id"])
            state.received.append(Received(headers, json.loads(body), body))
            if state.delay_first_s:
                delay, state.delay_first_s = state.delay_first_s, 0.0
                time.sleep(delay)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/lms/prompts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
