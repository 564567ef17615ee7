"""``tutorstream chaos`` for real, at a small scale: every fault, judged by event ids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]


def test_chaos_command_runs_every_fault_and_finds_nothing_missing(tmp_path: Path) -> None:
    """The command starts its own stack, runs the four faults and exits 0 with a clean report.

    Each fault's report holds every produced event once in every table and on the
    interventions topic, each bad record on the DLQ once (the metric agrees), the whole
    payload of each oversized one, and no learner whose state disagrees with its answers.
    """
    out = tmp_path / "chaos.json"
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tutorstream.cli import main; main()",
            "chaos",
            "--events",
            "2000",
            "--learners",
            "20",
            "--kills",
            "2",
            "--outage",
            "6",
            "--bad",
            "200",
            "--oversized",
            "2",
            "--rate",
            "400",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-4000:]}"
    assert "SIGKILL 2 of 2" in run.stderr and "missing" in run.stdout
    report = json.loads(out.read_text())
    assert report["ok"] is True
    faults = {f["fault"]: f for f in report["faults"]}
    assert sorted(faults) == ["bad", "kill", "outage", "rebalance"]
    for name, fault in faults.items():
        assert fault["produced"] == fault["stored"] == 2000, name
        assert fault["missing"] == 0, name
        assert set(fault["duplicated"].values()) == {0}, name
        assert fault["interventions_on_topic"] == fault["interventions_stored"] > 0, name
        assert fault["state_disagrees"] == 0, name
    bad = faults["bad"]
    assert bad["bad_records"] == bad["dlq_on_topic"] == bad["dlq_metric"] == 200
    assert bad["payloads_kept"] == 2
    assert len(faults["kill"]["interventions"]) == 2
    assert set(faults["outage"]["recoveries"]) == {
        "delivery holes",
        "reads from the commit",
        "records taken late",
        "batches taken one by one",
        "records sent again",
        "store waits",
    }


def test_chaos_command_refuses_an_unknown_fault(tmp_path: Path) -> None:
    """A fault it does not know is an error before any service starts."""
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tutorstream.cli import main; main()",
            "chaos",
            "--fault",
            "flood",
            "--out",
            str(tmp_path / "chaos.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "unknown fault ['flood']" in run.stderr
    assert not (tmp_path / "chaos.json").exists()
