from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inference.lab.evaluate import POLICY_FLOOR, merge_policy
from inference.registry import ModelRegistry
from tutorstream.cli import app

pytestmark = pytest.mark.unit

runner = CliRunner()


def _copy_of_the_packaged_model(root: Path) -> Path:
    spec = ModelRegistry.with_packaged([]).load("tutorstream-learner@latest")
    folder = root / "learner-copy" / "1"
    shutil.copytree(spec.folder, folder)
    return folder


def test_only_policy_replaces_just_the_policy_figures_of_the_stored_evaluation(
    tmp_path: Path,
) -> None:
    registry = tmp_path / "registry"
    folder = _copy_of_the_packaged_model(registry)
    before = json.loads((folder / "metrics.json").read_text())["evaluation"]
    out = tmp_path / "policy.json"
    result = runner.invoke(
        app,
        ["model", "eval", "--model", "learner-copy@1", "--registry", str(registry), "--only",
         "policy", "--policy-learners", "3", "--out", str(out), "--write"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "next-item policy" in result.output and POLICY_FLOOR in result.output
    report = json.loads(out.read_text())
    assert report["cohorts"] == [] and list(report["floors"]) == [POLICY_FLOOR]
    assert report["seeds"]["policy"] == before["seeds"]["policy"]
    assert {o["policy"] for o in report["policy"]["outcomes"]} == {
        "fixed", "random", "target", "max_info",
    }  # fmt: skip
    after = json.loads((folder / "metrics.json").read_text())["evaluation"]
    # Cohorts and the other floors are untouched; the policy section is the new run's.
    assert after["cohorts"] == before["cohorts"]
    assert {k: v for k, v in after["floors"].items() if k != POLICY_FLOOR} == {
        k: v for k, v in before["floors"].items() if k != POLICY_FLOOR
    }
    assert after["policy"]["config"]["n_learners"] == 3
    assert after["floors"][POLICY_FLOOR] == report["floors"][POLICY_FLOOR]
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"{report['policy']['policies']['fixed']['mean_events']:.1f}" in card
    shown = runner.invoke(app, ["model", "show", "learner-copy@1", "--registry", str(registry)])
    assert shown.exit_code == 0, shown.output  # re-signed after the update

    bad = runner.invoke(
        app, ["model", "eval", "--model", "learner-copy@1", "--registry", str(registry),
              "--only", "cohorts", "--out", str(out)],
    )  # fmt: skip
    assert bad.exit_code == 1 and "--only" in bad.output


def test_merge_policy_refuses_a_run_on_another_seed() -> None:
    stored = {"seeds": {"policy": 5}, "floors": {"other": {"met": True}}, "policy": None}
    run = {"seeds": {"policy": 5}, "policy": {"speedup_vs_fixed": 0.3}, "floors": {"x": 1}}
    merged = merge_policy(stored, run)
    assert merged["policy"] == {"speedup_vs_fixed": 0.3}
    assert merged["floors"] == {"other": {"met": True}, "x": 1}
    assert stored["policy"] is None  # the stored evaluation itself is left as it was
    with pytest.raises(ValueError, match="seed"):
        merge_policy(stored, {**run, "seeds": {"policy": 6}})
