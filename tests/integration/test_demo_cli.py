from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from common.kafka import consumer_config
from schemas.topics import LMS_EVENTS
from tests.polling import wait_for
from tutorstream import kafka, services

pytestmark = pytest.mark.integration

FIRST_EVENTS = 1500
FIRST_RATE = 150.0
PACE = 20.0


def _command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


class _Output:
    """The demo's output lines, each with when it was read, collected by a thread."""

    def __init__(self, stream: object) -> None:
        self.lines: list[tuple[float, str]] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append((time.monotonic(), line))

    def text(self) -> str:
        return "".join(line for _, line in self.lines)

    def interventions(self, after: float = 0.0) -> list[str]:
        return [line for at, line in list(self.lines) if at > after and " learner " in line]


def _events_sent(bootstrap: str) -> int:
    """How many records the events topic holds: the sum of its partitions' end offsets."""
    consumer = Consumer(consumer_config(bootstrap, "demo-test-offsets"))
    try:
        partitions = kafka.topic_partitions(bootstrap).get(LMS_EVENTS.name, 0)
        return sum(
            consumer.get_watermark_offsets(TopicPartition(LMS_EVENTS.name, p), 10)[1]
            for p in range(partitions)
        )
    finally:
        consumer.close()


def test_demo_keeps_the_class_at_a_human_pace_and_a_kill_stops_its_workers_and_api(
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
            str(FIRST_EVENTS),
            "--rate",
            str(FIRST_RATE),
            "--pace",
            str(PACE),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    output = _Output(demo.stdout)
    try:
        # the first interventions, printed live
        wait_for(lambda: len(output.interventions()) >= 3, 240, "three interventions printed")
        found = re.search(r"^broker (\S+);", output.text(), re.MULTILINE)
        assert found, output.text()
        bootstrap = found.group(1)

        # The first events are sent at the first rate; then the class keeps working at the
        # pace: counted from the moment the topic holds the first events, the next ones come
        # no faster than the pace allows (give or take the producer's batching) and do come.
        sent = wait_for(
            lambda: n if (n := _events_sent(bootstrap)) >= FIRST_EVENTS else None,
            120,
            f"the first {FIRST_EVENTS} events sent",
        )
        began = time.monotonic()
        more = 5 * PACE  # five seconds' worth at the pace
        wait_for(lambda: _events_sent(bootstrap) >= sent + more, 60, f"{more:g} events more")
        took = time.monotonic() - began
        assert took >= 0.3 * more / PACE, f"{more:g} events in {took:.1f} s: faster than the pace"
        # and interventions keep arriving after the first events are all in
        wait_for(lambda: output.interventions(after=began), 180, "an intervention at the pace")

        # the workers, the API and the producer it started (the stack's broker and database
        # are its children too, and stay up by design)
        spawned = {
            pid
            for pid in services.process_tree(demo.pid)
            if {"worker", "api", "produce"} & set(_command_line(pid))
            or any(part.endswith("provider.mjs") for part in _command_line(pid))
        }
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=60)
        output.thread.join(timeout=10)
    finally:
        if demo.poll() is None:
            demo.kill()
    text = output.text()
    assert demo.returncode == 0, text
    shown = output.interventions()
    assert any(
        state in shown[0]
        for state in ("gaming", "overconfidence", "anchoring", "confirmation", "wheel_spinning")
    )
    assert f"then {PACE:g}/s until Ctrl-C" in text, text
    assert "stopping..." in text and "interventions shown" in text
    # one worker, the API, the producer, and the console's OpenID Provider
    assert len(spawned) == 4, text
    assert "tutors' console on http://127.0.0.1:" in text, text
    assert "sign in as demo-tutor with the password " in text, text
    deadline = time.monotonic() + 15  # the demo has returned; its children may still be exiting
    while [pid for pid in spawned if services.pid_alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in spawned if services.pid_alive(pid)]
    # the producer stopped at the signal, flushed what it had sent, and said so
    produced = (cli_state_dir / "logs" / "produce.log").read_text()
    assert f"the class keeps working at {PACE:g} events/s until stopped" in produced, produced
    paced = produced.split("until stopped", 1)[1]
    assert re.search(r"^sent ([\d,]+), delivered \1, failed 0 ", paced, re.MULTILINE), produced
    status = run_cli("stack", "status")
    assert status.returncode == 0, status.stdout
