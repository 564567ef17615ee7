from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inference.features import EVENT_FEATURES, QUERY_FEATURES
from inference.registry import (
    CHECKSUMS_FILE,
    DEFAULT_MODEL,
    PACKAGED_MODELS,
    IntegrityError,
    ModelRef,
    ModelRegistry,
    RegistryError,
    version_key,
)
from inference.states import STATES

pytestmark = pytest.mark.unit

ShippedCopy = tuple[ModelRegistry, Path]


@pytest.fixture()
def shipped_copy(tmp_path: Path) -> ShippedCopy:
    entry = ModelRegistry().resolve(DEFAULT_MODEL)
    target = tmp_path / "registry" / entry.name / entry.version
    shutil.copytree(entry.folder, target)
    return ModelRegistry([tmp_path / "registry"]), target


def test_shipped_model_verifies_and_matches_the_feature_contract() -> None:
    spec = ModelRegistry().load(f"{DEFAULT_MODEL}@latest")
    assert spec.folder.is_relative_to(PACKAGED_MODELS)
    assert spec.event_features == EVENT_FEATURES
    assert spec.query_features == QUERY_FEATURES
    assert spec.states == STATES
    assert set(spec.checksums) >= {
        "model.onnx", "model.fp16.onnx", "config.json", "metrics.json", "MODEL_CARD.md",
        "model.safetensors",
    }  # fmt: skip
    assert spec.thresholds().shape == (len(STATES) - 1,)
    assert ModelRegistry().load(spec.ref).folder == spec.folder
    size = sum(p.stat().st_size for p in spec.folder.iterdir())
    assert size < 5 * 1024 * 1024


@pytest.mark.parametrize("victim", ["model.onnx", "config.json", "model.fp16.onnx"])
def test_a_changed_byte_is_refused(shipped_copy: ShippedCopy, victim: str) -> None:
    registry, folder = shipped_copy
    registry.load(DEFAULT_MODEL)  # intact copy loads
    data = bytearray((folder / victim).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / victim).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=victim):
        registry.load(DEFAULT_MODEL)


def test_unlisted_missing_or_unsigned_files_are_refused(shipped_copy: ShippedCopy) -> None:
    registry, folder = shipped_copy
    (folder / "extra.onnx").write_bytes(b"not a model")
    with pytest.raises(IntegrityError, match="not listed"):
        registry.load(DEFAULT_MODEL)
    (folder / "extra.onnx").unlink()
    (folder / "metrics.json").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        registry.load(DEFAULT_MODEL)
    (folder / CHECKSUMS_FILE).unlink()
    with pytest.raises(IntegrityError, match=CHECKSUMS_FILE):
        registry.load(DEFAULT_MODEL)


def test_latest_is_the_highest_version_and_earlier_roots_win(
    shipped_copy: ShippedCopy, tmp_path: Path
) -> None:
    registry, folder = shipped_copy
    for version in ("8", "10", "9"):  # around the shipped version, never on it
        shutil.copytree(folder, folder.parent / version)
    assert registry.resolve(DEFAULT_MODEL).version == "10"
    assert registry.resolve(f"{DEFAULT_MODEL}@9").folder == folder.parent / "9"
    assert registry.next_version(DEFAULT_MODEL) == "11"
    both = ModelRegistry.with_packaged([tmp_path / "registry"])
    shipped = ModelRegistry().resolve(DEFAULT_MODEL)
    assert both.resolve(shipped.ref).folder == folder  # the user root comes first
    with pytest.raises(RegistryError, match="not found"):
        registry.resolve(f"{DEFAULT_MODEL}@77")
    with pytest.raises(RegistryError, match="not found"):
        registry.resolve("no-such-model")


def test_model_references_are_plain_names() -> None:
    assert ModelRef.parse("m@3") == ModelRef("m", "3")
    assert ModelRef.parse("m").version == "latest"
    for bad in ("../m", "m@../../etc", "M@1", "m@a/b", "@1"):
        with pytest.raises(RegistryError):
            ModelRef.parse(bad)
    assert sorted(["10", "2", "1.10", "1.2"], key=version_key) == ["1.2", "1.10", "2", "10"]


def test_a_config_without_the_contract_is_refused(shipped_copy: ShippedCopy) -> None:
    registry, folder = shipped_copy
    config = json.loads((folder / "config.json").read_text())
    del config["decision_thresholds"]
    (folder / "config.json").write_text(json.dumps(config))
    from inference.registry import write_checksums

    write_checksums(folder)
    with pytest.raises(RegistryError, match="decision_thresholds"):
        registry.load(DEFAULT_MODEL)


def test_serving_path_imports_neither_torch_nor_transformers() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None
        sys.modules["transformers"] = None
        import numpy as np
        import inference.registry, inference.runtime, inference.decision
        from inference.runtime import LearnerModel, MicroBatcher
        model = LearnerModel.load("tutorstream-learner@latest")
        with MicroBatcher(model, max_batch=8, max_delay_ms=1) as batcher:
            out = batcher.predict(*model.blank_inputs(3))
        assert out.state_probs.shape == (3, 6), out.state_probs.shape
        loaded = [m for m in ("torch", "transformers") if sys.modules.get(m) is not None]
        assert not loaded, loaded
        print("ok", model.provider)
        """
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok CPUExecutionProvider")


@pytest.mark.parametrize("app", ["streams.app", "api.app"])
def test_serving_apps_import_neither_the_lab_nor_training(app: str) -> None:
    # A fresh interpreter, so that modules other tests imported do not hide an import here.
    script = textwrap.dedent(
        f"""
        import importlib, sys
        importlib.import_module({app!r})
        parts = ("inference.lab", "inference.training")
        loaded = sorted(
            m for m in sys.modules if m in parts or m.startswith(tuple(p + "." for p in parts))
        )
        print("loaded:", ",".join(loaded))
        """
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded:", done.stdout
