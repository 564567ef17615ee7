"""The locks in requirements/ agree with pyproject.toml.

Every requirement of the core and of each extra a lock names is pinned there, and the pin
satisfies the requirement's specifier; every pin is needed, by the project itself or by another
pin (the ``# via`` lines ``make lock`` writes). A failure means pyproject.toml changed since the
last ``make lock``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "tutorstream"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
_VIA = re.compile(r"^\s+# via (.+)$")


@dataclass
class Lock:
    """One lock file: the extras it installs, its pins and what requires each pin."""

    extras: tuple[str, ...] | None = None
    pins: dict[str, Version] = field(default_factory=dict)
    via: dict[str, set[str]] = field(default_factory=dict)


def parse_lock(text: str) -> Lock:
    """Read a lock written by ``make lock``."""
    lock = Lock()
    last: str | None = None
    for line in text.splitlines():
        if line.startswith("# extras:"):
            lock.extras = tuple(line.removeprefix("# extras:").split())
        elif (pin := _PIN.match(line)) is not None:
            last = canonicalize_name(pin.group(1))
            lock.pins[last] = Version(pin.group(2))
            lock.via[last] = set()
        elif (via := _VIA.match(line)) is not None and last is not None:
            lock.via[last] |= {canonicalize_name(name.strip()) for name in via.group(1).split(",")}
    return lock


def disagreements(project: dict[str, Any], lock: Lock) -> list[str]:
    """Return how a lock disagrees with pyproject.toml's ``[project]`` table (none: [])."""
    if lock.extras is None:
        return ["no `# extras:` line"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    problems = [f"extra {extra!r} is not in pyproject.toml" for extra in lock.extras
                if extra not in optional]  # fmt: skip
    direct: set[str] = set()
    lines = list(project["dependencies"])
    for extra in lock.extras:
        lines += optional.get(extra, [])
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name: str = canonicalize_name(requirement.name)
        direct.add(name)
        pinned = lock.pins.get(name)
        if pinned is None:
            problems.append(f"{requirement} is not pinned")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{name}=={pinned} does not satisfy {requirement}")
    for name, parents in lock.via.items():
        if PROJECT in parents and name not in direct:
            problems.append(f"{name} is pinned for {PROJECT}, which no longer requires it")
        for parent in sorted(parents - {PROJECT} - lock.pins.keys()):
            problems.append(f"{name} is pinned for {parent}, which is not pinned")
    reached: set[str] = set()
    todo = [PROJECT]
    while todo:
        parent = todo.pop()
        for name, parents in lock.via.items():
            if parent in parents and name not in reached:
                reached.add(name)
                todo.append(name)
    problems += [f"{name} is pinned but nothing requires it"
                 for name in sorted(lock.pins.keys() - reached)]  # fmt: skip
    return problems


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    return table


@pytest.fixture(scope="module")
def locks() -> dict[str, Lock]:
    return {
        path.name: parse_lock(path.read_text("utf-8"))
        for path in sorted((ROOT / "requirements").glob("*.txt"))
    }


def test_every_lock_agrees_with_pyproject(project: dict[str, Any], locks: dict[str, Lock]) -> None:
    found = {name: disagreements(project, lock) for name, lock in locks.items()}
    assert {name: problems for name, problems in found.items() if problems} == {}, (
        "requirements/ disagrees with pyproject.toml; run `make lock`"
    )


def test_the_core_and_every_extra_are_locked(
    project: dict[str, Any], locks: dict[str, Lock]
) -> None:
    assert "core.txt" in locks
    # the core with its CPU inference runtime: what the image installs
    assert locks["core.txt"].extras == ("cpu",)
    locked = {extra for lock in locks.values() for extra in lock.extras or ()}
    assert locked == set(project["optional-dependencies"])


def test_no_lock_installs_both_inference_runtimes(
    project: dict[str, Any], locks: dict[str, Lock]
) -> None:
    """onnxruntime and onnxruntime-gpu install one ``onnxruntime`` module: the second overwrites."""
    runtimes = {"onnxruntime", "onnxruntime-gpu"}
    both = {name for name, lock in locks.items() if runtimes <= lock.pins.keys()}
    assert both == set()
    core = {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}
    assert core.isdisjoint(runtimes), "the runtime belongs in the cpu or gpu extra, not the core"
    assert "onnxruntime" in locks["core.txt"].pins
    assert "onnxruntime-gpu" in locks["gpu.txt"].pins


def test_make_setup_installs_the_dev_lock(locks: dict[str, Lock]) -> None:
    makefile = (ROOT / "Makefile").read_text("utf-8")
    assert "LOCK := requirements/dev.txt" in makefile
    assert locks["dev.txt"].extras == ("cpu", "train", "dev")


def test_a_changed_requirement_is_reported(project: dict[str, Any], locks: dict[str, Lock]) -> None:
    lock = locks["core.txt"]
    newer = dict(project, dependencies=[*project["dependencies"], "left-pad>=1"])
    assert disagreements(newer, lock) == ["left-pad>=1 is not pinned"]
    numpy = lock.pins["numpy"]
    stricter = [
        f"numpy>{numpy}" if line.startswith("numpy") else line for line in project["dependencies"]
    ]
    assert disagreements(dict(project, dependencies=stricter), lock) == [
        f"numpy=={numpy} does not satisfy numpy>{numpy}"
    ]


def test_a_pin_nothing_needs_is_reported(project: dict[str, Any], locks: dict[str, Lock]) -> None:
    lock = locks["core.txt"]
    fewer = [line for line in project["dependencies"] if not line.startswith("typer")]
    problems = disagreements(dict(project, dependencies=fewer), lock)
    assert "typer is pinned for tutorstream, which no longer requires it" in problems
    orphan = Lock(
        extras=lock.extras,
        pins={**lock.pins, "left-pad": Version("1.0")},
        via={**lock.via, "left-pad": {"right-pad"}},
    )
    assert disagreements(project, orphan) == [
        "left-pad is pinned for right-pad, which is not pinned",
        "left-pad is pinned but nothing requires it",
    ]
