from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tutorstream.cli import app

pytestmark = pytest.mark.unit

runner = CliRunner()


def test_list_and_show_the_packaged_model(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["model", "list", "--registry", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "tutorstream-learner@" in listed.output and "packaged" in listed.output
    shown = runner.invoke(
        app, ["model", "show", "tutorstream-learner", "--registry", str(tmp_path)]
    )
    assert shown.exit_code == 0, shown.output
    assert "checksums verified" in shown.output and "model.onnx" in shown.output


def test_train_register_show_tamper_and_eval_a_tiny_model(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    trained = runner.invoke(
        app,
        [
            "model", "train", "--name", "tiny", "--registry", str(registry), "--learners", "4",
            "--val-learners", "3", "--epochs", "1", "--hidden-size", "8", "--threads", "1",
            "--next-loss-weight", "2.5", "--max-false-alert-rate", "0.02", "--no-eval",
        ],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    folder = registry / "tiny" / "1"
    assert (folder / "model.onnx").is_file() and (folder / "checksums.sha256").is_file()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["parity"]["max_abs_diff"] <= 1e-4
    card = (folder / "MODEL_CARD.md").read_text()
    assert "--seed 20240601" in card and "## Limits" in card
    # the card's command reproduces the options actually used
    assert "--next-loss-weight 2.5" in card and "--max-false-alert-rate 0.02" in card
    config = json.loads((folder / "config.json").read_text())
    assert config["training"]["next_loss_weight"] == 2.5
    assert config["training"]["max_false_alert_rate"] == 0.02

    again = runner.invoke(
        app, ["model", "train", "--name", "tiny", "--version", "1", "--registry", str(registry),
              "--learners", "4", "--val-learners", "3", "--epochs", "1", "--no-eval"],
    )  # fmt: skip
    # refused before any training, not after it
    assert again.exit_code == 1 and "already exists" in again.output
    assert "trained" not in again.output and "epoch" not in again.output

    out = tmp_path / "eval.json"
    evaluated = runner.invoke(
        app,
        ["model", "eval", "--model", "tiny@latest", "--registry", str(registry), "--learners",
         "3", "--policy-learners", "0", "--out", str(out), "--write"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(out.read_text())
    assert [c["family"] for c in report["cohorts"]] == ["bkt", "irt"]
    assert {"model", "rules", "logistic"} <= set(report["cohorts"][0]["states"])
    assert {"model", "logistic", "bkt", "oracle"} <= set(report["cohorts"][0]["next_answer"])
    assert any("false-alert" in k for k in report["floors"])
    assert "### Floors" in (folder / "MODEL_CARD.md").read_text()
    shown = runner.invoke(app, ["model", "show", "tiny@1", "--registry", str(registry)])
    assert shown.exit_code == 0, shown.output  # --write re-signed the folder

    onnx = folder / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    refused = runner.invoke(app, ["model", "show", "tiny@1", "--registry", str(registry)])
    assert refused.exit_code == 1
    assert "integrity check failed" in refused.output and "model.onnx" in refused.output
