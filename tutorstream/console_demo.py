"""The demo's OpenID Provider: a demo tutor who may see the simulated classes (development only).

It runs npm ``oidc-provider`` from ``tests/web/provider.mjs`` of a checkout (``make setup``
installs its packages), so it exists only where the repository does; production mode refuses it.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

WEB_DIR: Final = Path(__file__).resolve().parents[1] / "tests" / "web"
DEMO_LOGIN: Final = "demo-tutor"
CLIENT_ID: Final = "tutorstream-demo-console"


@dataclass
class DemoProvider:
    """A running demo provider, and what the API and the person at the demo need to know.

    Attributes:
        process: the Node process.
        issuer: its issuer URL.
        password: the demo tutor's password (made for this run).
        environment: the ``TUTORSTREAM_CONSOLE__*`` variables that point the API at it.
    """

    process: subprocess.Popen[bytes]
    issuer: str
    password: str
    environment: dict[str, str]


def unavailable() -> str | None:
    """Return why the demo cannot start a provider here, or ``None`` when it can."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (WEB_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"the provider's npm packages are missing in {WEB_DIR} (run `make setup`)"
    return None


def run_provider(
    config_path: Path,
    port: int,
    users: dict[str, dict[str, object]],
    clients: list[dict[str, object]],
    log: Path,
) -> subprocess.Popen[bytes]:
    """Start ``tests/web/provider.mjs`` on ``port`` with these users and clients.

    Raises:
        RuntimeError: when it does not become ready within 30 seconds.
    """
    issuer = f"http://127.0.0.1:{port}"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(
        json.dumps({"port": port, "issuer": issuer, "users": users, "clients": clients})
    )
    config_path.chmod(0o600)
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["node", str(WEB_DIR / "provider.mjs"), str(config_path)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while f"ready {issuer}" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the OpenID Provider did not start; see {log}")
        time.sleep(0.1)
    return process


def start_provider(
    state_dir: Path, port: int, api_url: str, classes: list[str], log: Path
) -> DemoProvider:
    """Start the provider on ``port`` with one demo tutor of ``classes``.

    Raises:
        RuntimeError: when it does not become ready within 30 seconds.
    """
    issuer = f"http://127.0.0.1:{port}"
    password = secrets.token_urlsafe(9)
    client_secret = secrets.token_urlsafe(32)
    process = run_provider(
        state_dir / "demo-provider.json",
        port,
        {DEMO_LOGIN: {"password": password, "name": "Demo Tutor", "groups": classes}},
        [
            {
                "client_id": CLIENT_ID,
                "client_secret": client_secret,
                "redirect_uris": [f"{api_url}/console/callback"],
                "post_logout_redirect_uris": [f"{api_url}/console/"],
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }
        ],
        log,
    )
    return DemoProvider(
        process=process,
        issuer=issuer,
        password=password,
        environment={
            "TUTORSTREAM_CONSOLE__OIDC_ISSUER": issuer,
            "TUTORSTREAM_CONSOLE__OIDC_CLIENT_ID": CLIENT_ID,
            "TUTORSTREAM_CONSOLE__OIDC_CLIENT_SECRET": client_secret,
            # The demo serves plain HTTP on the loopback interface.
            "TUTORSTREAM_CONSOLE__COOKIE_SECURE": "false",
        },
    )
