"""Model registry: folders ``<name>/<version>/`` with ONNX files, config, metrics and a card.

A model folder holds

* ``model.onnx`` (fp32) and ``model.fp16.onnx`` (fp16 compute, for GPUs),
* ``candidates.onnx`` (candidate items scored with one encoder pass) and, for a GRU model,
  ``step.onnx`` and ``step_candidates.onnx`` (the same weights over a state carried per
  learner: one recurrent step per event),
* ``config.json`` (the ``TutorStreamConfig`` written by ``save_pretrained``) and
  ``model.safetensors`` (the PyTorch weights, for ``from_pretrained``),
* ``metrics.json`` and ``MODEL_CARD.md``,
* ``checksums.sha256``, one ``<sha256>  <file>`` line per other file.

Loading verifies every file against ``checksums.sha256`` and refuses a folder where a hash
differs, a listed file is missing or an unlisted file sits beside them; the ONNX bytes handed to
the runtime are the very bytes that were hashed. A trained default model ships inside the
package (``inference/models``), so serving needs neither torch nor transformers: this module
imports only the standard library and numpy.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.decision import threshold_vector

PACKAGED_MODELS = Path(__file__).resolve().parent / "models"
"""Registry root shipped with the package."""

DEFAULT_MODEL = "tutorstream-learner"
"""Name of the shipped default model."""

CHECKSUMS_FILE = "checksums.sha256"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "MODEL_CARD.md"
ONNX_FILES = {"fp32": "model.onnx", "fp16": "model.fp16.onnx"}
CANDIDATES_FILE = "candidates.onnx"
STEP_FILE = "step.onnx"
STEP_CANDIDATES_FILE = "step_candidates.onnx"
LATEST = "latest"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class RegistryError(Exception):
    """Raised when a model reference cannot be resolved or a model folder is malformed."""


class IntegrityError(RegistryError):
    """Raised when a model file's SHA-256 differs from its recorded sum, or files are missing."""


@dataclass(frozen=True)
class ModelRef:
    """A ``name@version`` reference; ``version`` may be ``latest``."""

    name: str
    version: str = LATEST

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``name``, ``name@version`` or ``name@latest``.

        Raises:
            RegistryError: when the name or version is not a plain folder name.
        """
        name, _, version = text.partition("@")
        ref = cls(name=name, version=version or LATEST)
        for label, value in (("name", ref.name), ("version", ref.version)):
            if not _NAME.match(value):
                raise RegistryError(
                    f"model reference {text!r}: {label} {value!r} must match {_NAME.pattern}"
                )
        return ref

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``2 < 10`` and ``1.2 < 1.10``; non-numeric parts sort as text."""
    parts = re.split(r"[.\-_]", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(folder: Path) -> dict[str, str]:
    """Hash every regular file in ``folder`` (but the sums file) and write ``checksums.sha256``.

    Returns:
        ``{file name: sha256}``.
    """
    sums = {
        p.name: sha256_file(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != CHECKSUMS_FILE
    }
    lines = "".join(f"{digest}  {name}\n" for name, digest in sums.items())
    (folder / CHECKSUMS_FILE).write_text(lines, encoding="utf-8")
    return sums


def read_checksums(folder: Path) -> dict[str, str]:
    """Read ``checksums.sha256`` of a model folder.

    Raises:
        IntegrityError: when the file is missing or a line is malformed.
    """
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        raise IntegrityError(f"{folder}: no {CHECKSUMS_FILE}; the model cannot be verified")
    sums: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](\S+)", line.strip())
        if match is None or "/" in match.group(2):
            raise IntegrityError(f"{path}:{number}: not a '<sha256>  <file>' line: {line!r}")
        sums[match.group(2)] = match.group(1)
    return sums


def verified_bytes(folder: Path, name: str, sums: dict[str, str]) -> bytes:
    """Return the bytes of ``folder/name`` after checking them against ``sums``.

    Raises:
        IntegrityError: when the file is unlisted, missing or its hash differs.
    """
    if name not in sums:
        raise IntegrityError(f"{folder / name}: not listed in {CHECKSUMS_FILE}")
    path = folder / name
    if not path.is_file():
        raise IntegrityError(f"{path}: listed in {CHECKSUMS_FILE} but missing")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sums[name]:
        raise IntegrityError(
            f"{path}: SHA-256 {actual} does not match the recorded {sums[name]}; refusing to load"
        )
    return data


def verify_folder(folder: Path) -> dict[str, str]:
    """Check every file of a model folder against its checksums.

    Returns:
        The recorded sums.

    Raises:
        IntegrityError: on any mismatch, missing file or unlisted file.
    """
    sums = read_checksums(folder)
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS_FILE}
    unlisted = sorted(present - set(sums))
    if unlisted:
        raise IntegrityError(f"{folder}: files not listed in {CHECKSUMS_FILE}: {unlisted}")
    for name in sums:
        verified_bytes(folder, name, sums)
    return sums


@dataclass(frozen=True)
class ModelSpec:
    """What serving needs to know about one registered model, read from its verified config.

    Attributes:
        name: model name.
        version: model version.
        folder: the model folder.
        encoder: ``gru`` or ``transformer``.
        event_features: per-event feature names, in input order.
        query_features: query feature names, in input order.
        states: state names, in output order.
        window: events per window.
        decision_thresholds: per non-``none`` state, the alert threshold.
        checksums: recorded SHA-256 per file.
        config: the whole config, as written.
    """

    name: str
    version: str
    folder: Path
    encoder: str
    event_features: tuple[str, ...]
    query_features: tuple[str, ...]
    states: tuple[str, ...]
    window: int
    decision_thresholds: dict[str, float]
    checksums: dict[str, str]
    config: dict[str, Any]

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def thresholds(self) -> npt.NDArray[np.float64]:
        """Decision thresholds as a vector aligned with ``states[1:]``."""
        return threshold_vector(self.decision_thresholds, self.states)

    def onnx_bytes(self, precision: str = "fp32") -> bytes:
        """Return the verified bytes of the ``fp32`` or ``fp16`` graph.

        Raises:
            RegistryError: for an unknown precision.
            IntegrityError: when the file's hash does not match.
        """
        if precision not in ONNX_FILES:
            raise RegistryError(
                f"precision: must be one of {sorted(ONNX_FILES)}, got {precision!r}"
            )
        return verified_bytes(self.folder, ONNX_FILES[precision], self.checksums)

    def candidates_bytes(self) -> bytes | None:
        """Return the verified candidate-scoring graph, or ``None`` for a model without one.

        Raises:
            IntegrityError: when the file's hash does not match.
        """
        if CANDIDATES_FILE not in self.checksums:
            return None
        return verified_bytes(self.folder, CANDIDATES_FILE, self.checksums)

    def step_bytes(self) -> tuple[bytes, bytes] | None:
        """Return the verified ``(step, step_candidates)`` graphs, ``None`` for a model without.

        A GRU model carries each learner's state with them: one recurrent step per event.

        Raises:
            IntegrityError: when a file's hash does not match.
        """
        if STEP_FILE not in self.checksums or STEP_CANDIDATES_FILE not in self.checksums:
            return None
        return (
            verified_bytes(self.folder, STEP_FILE, self.checksums),
            verified_bytes(self.folder, STEP_CANDIDATES_FILE, self.checksums),
        )

    def metrics(self) -> dict[str, Any]:
        """Return the verified ``metrics.json``."""
        data: dict[str, Any] = json.loads(verified_bytes(self.folder, METRICS_FILE, self.checksums))
        return data


def _spec_from_folder(name: str, version: str, folder: Path) -> ModelSpec:
    sums = verify_folder(folder)
    config: dict[str, Any] = json.loads(verified_bytes(folder, CONFIG_FILE, sums))
    try:
        spec = ModelSpec(
            name=name,
            version=version,
            folder=folder,
            encoder=str(config["encoder"]),
            event_features=tuple(config["event_features"]),
            query_features=tuple(config["query_features"]),
            states=tuple(config["states"]),
            window=int(config["window"]),
            decision_thresholds={k: float(v) for k, v in config["decision_thresholds"].items()},
            checksums=sums,
            config=config,
        )
        spec.thresholds()
    except (KeyError, TypeError, ValueError) as err:
        raise RegistryError(f"{folder / CONFIG_FILE}: not a learner-model config: {err}") from err
    return spec


@dataclass(frozen=True)
class RegistryEntry:
    """One model folder found in a registry root."""

    name: str
    version: str
    folder: Path

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


class ModelRegistry:
    """Model folders under one or more roots; earlier roots win on equal ``name@version``.

    Args:
        roots: registry roots, e.g. a user registry first and the packaged one last.
    """

    def __init__(self, roots: Sequence[Path] = (PACKAGED_MODELS,)) -> None:
        self.roots = tuple(Path(r) for r in roots)

    @classmethod
    def with_packaged(cls, extra_roots: Iterable[Path] = ()) -> ModelRegistry:
        """Return a registry over ``extra_roots`` followed by the packaged models."""
        roots = [Path(r) for r in extra_roots]
        if PACKAGED_MODELS not in roots:
            roots.append(PACKAGED_MODELS)
        return cls(roots)

    def entries(self) -> list[RegistryEntry]:
        """Every model folder, sorted by name then version (newest last)."""
        found: dict[tuple[str, str], RegistryEntry] = {}
        for root in self.roots:
            if not root.is_dir():
                continue
            for name_dir in sorted(p for p in root.iterdir() if p.is_dir()):
                for version_dir in sorted(p for p in name_dir.iterdir() if p.is_dir()):
                    if (version_dir / CONFIG_FILE).is_file():
                        key = (name_dir.name, version_dir.name)
                        found.setdefault(key, RegistryEntry(key[0], key[1], version_dir))
        return sorted(found.values(), key=lambda e: (e.name, version_key(e.version)))

    def resolve(self, ref: str | ModelRef) -> RegistryEntry:
        """Find the folder of ``name@version`` or ``name@latest``.

        Raises:
            RegistryError: when no such model is registered.
        """
        model_ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        candidates = [e for e in self.entries() if e.name == model_ref.name]
        if model_ref.version != LATEST:
            candidates = [e for e in candidates if e.version == model_ref.version]
        if not candidates:
            known = ", ".join(e.ref for e in self.entries()) or "none"
            roots = ", ".join(str(r) for r in self.roots)
            raise RegistryError(f"model {model_ref}: not found under {roots} (known: {known})")
        return candidates[-1]

    def load(self, ref: str | ModelRef = DEFAULT_MODEL) -> ModelSpec:
        """Resolve ``ref`` and return its verified spec.

        Raises:
            RegistryError: when the model is unknown or its config malformed.
            IntegrityError: when any file's hash does not match.
        """
        entry = self.resolve(ref)
        return _spec_from_folder(entry.name, entry.version, entry.folder)

    def next_version(self, name: str) -> str:
        """Return the version after the newest numeric version of ``name`` (``1`` if none)."""
        numeric = [int(e.version) for e in self.entries() if e.name == name and e.version.isdigit()]
        return str(max(numeric, default=0) + 1)
