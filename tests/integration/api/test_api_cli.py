from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from api_support import ApiEnv

from tutorstream.services import free_port

pytestmark = pytest.mark.integration


def test_tutorstream_api_serves_until_stopped(api_env: ApiEnv, tmp_path: Path):
    port = free_port()
    script = shutil.which("tutorstream", path=str(Path(sys.executable).parent))
    command = (
        [script] if script else [sys.executable, "-c", "from tutorstream.cli import main; main()"]
    )
    env = {
        **os.environ,
        "TUTORSTREAM_STATE_DIR": str(tmp_path / "state"),
        "TUTORSTREAM_KAFKA_BOOTSTRAP": api_env.bootstrap,
        "TUTORSTREAM_DATABASE_URL": api_env.database_url,
        "TUTORSTREAM_STORE__DB_SCHEMA": api_env.schema,
        "TUTORSTREAM_TOPIC_PREFIX": api_env.prefix,
    }
    process = subprocess.Popen(
        [*command, "api", "--port", str(port), "--loglevel", "info"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert ready.json()["checks"] == {"kafka": True, "database": True, "live_feed": True}
        agent = '{"mbox": "mailto:who@school.example"}'
        searched = httpx.get(
            f"http://127.0.0.1:{port}/xapi/statements",
            params={"agent": agent},
            headers={"X-Experience-API-Version": "1.0.3", **api_env.auth("ingest")},
        )
        assert searched.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    # The request log names routes, never the query that held an address.
    assert "GET /xapi/statements 200" in output
    assert "who@school.example" not in output and "who%40school" not in output
