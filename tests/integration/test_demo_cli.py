from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tutorstream import services

pytestmark = pytest.mark.integration


def _command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def test_demo_prints_interventions_and_a_kill_stops_its_workers_and_api(
    run_cli, cli_state_dir: Path
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TUTORSTREAM_KAFKA_BOOTSTRAP", "TUTORSTREAM_DATABASE_URL")
    }
    env["TUTORSTREAM_STATE_DIR"] = str(cli_state_dir)
    demo = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tutorstream.cli import main; main()",
            "demo",
            "--learners",
            "8",
            "--events",
            "3000",
            "--rate",
            "150",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 240
    try:
        # wait for the first interventions printed live
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if sum(" learner " in x for x in lines) >= 3:
                break
        # the workers, the API and the producer it started (the stack's broker and database
        # are its children too, and stay up by design)
        spawned = {
            pid
            for pid in services.process_tree(demo.pid)
            if {"worker", "api", "produce"} & set(_command_line(pid))
            or any(part.endswith("provider.mjs") for part in _command_line(pid))
        }
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    output = "".join(lines) + rest
    assert demo.returncode == 0, output
    shown = [x for x in lines if " learner " in x]
    assert len(shown) >= 3, output
    assert any(
        state in shown[0]
        for state in ("gaming", "overconfidence", "anchoring", "confirmation", "wheel_spinning")
    )
    assert "stopping..." in output and "interventions shown" in output
    # one worker, the API, the producer, and the console's OpenID Provider
    assert len(spawned) == 4, output
    assert "tutors' console on http://127.0.0.1:" in output, output
    assert "sign in as demo-tutor with the password " in output, output
    deadline = time.monotonic() + 15  # the demo has returned; its children may still be exiting
    while [pid for pid in spawned if services.pid_alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in spawned if services.pid_alive(pid)]
    status = run_cli("stack", "status")
    assert status.returncode == 0, status.stdout
