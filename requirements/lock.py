"""Write the lock files in this folder from pyproject.toml (``make lock`` runs it).

Each lock pins every package one install of tutorstream needs, for the core and the extras the
lock names in its ``# extras:`` line, with a ``# via`` line naming what requires it (as
pip-compile writes them). ``make setup`` installs ``dev.txt`` and then the project itself with
``--no-deps``; ``tests/unit/test_requirements_lock.py`` fails when pyproject.toml and a lock
disagree.

Why pip's own resolver (``pip install --dry-run --ignore-installed --report``) rather than uv or
poetry: it reads pip's configuration, so the lock resolves what ``pip install`` installs on this
machine (the CPU build of torch from the find-links folder, the extra local indexes, the global
constraint file), which uv and poetry do not read; and it needs nothing but the pip that comes
with Python, so a fresh machine can refresh the lock before anything is installed.

The locks carry no hashes: pip's report names only the one artifact chosen for this platform, so
a hash-checked install would refuse every other platform's wheel of the same version.

Run with the Python that makes the virtual environment (stdlib only, plus the ``packaging`` that
pip vendors, to evaluate environment markers the way pip does)::

    python3.11 requirements/lock.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROJECT = "tutorstream"

# Lock file name → the extras it installs with the core. ``dev.txt`` is resolved first and pins
# every other lock, so a package has the same version in every lock that holds it.
LOCKS: dict[str, tuple[str, ...]] = {
    "dev.txt": ("cpu", "train", "dev"),
    "core.txt": ("cpu",),
    "gpu.txt": ("gpu",),
    "parquet.txt": ("cpu", "parquet"),
    "grafana.txt": ("cpu", "grafana"),
}
PRIMARY = "dev.txt"


def resolve(extras: tuple[str, ...], constraints: Path | None) -> dict[str, Any]:
    """Return pip's installation report for the project with ``extras``, installing nothing."""
    target = f".[{','.join(extras)}]" if extras else "."
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
            "--quiet", "--report", str(report), target,
        ]  # fmt: skip
        if constraints is not None:
            command += ["--constraint", str(constraints)]
        print(f"resolving {target}", file=sys.stderr)
        subprocess.run(command, cwd=ROOT, check=True)
        data: dict[str, Any] = json.loads(report.read_text("utf-8"))
    return data


def required_by(report: dict[str, Any], extras: tuple[str, ...]) -> dict[str, set[str]]:
    """Return each package's name → the names of the packages in the report that require it."""
    environment: dict[str, str] = report["environment"]
    metadata: dict[str, Any] = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"] for item in report["install"]
    }
    via: dict[str, set[str]] = {name: set() for name in metadata}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(PROJECT, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        for line in metadata[name].get("requires_dist", []):
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({**environment, "extra": extra}) for extra in {"", *wanted}
            ):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in metadata:
                raise SystemExit(f"{name} requires {dependency}, which pip did not resolve")
            via[dependency].add(name)
            todo.append((dependency, frozenset(requirement.extras)))
    unreached = sorted(name for name, parents in via.items() if not parents and name != PROJECT)
    if unreached:
        raise SystemExit(f"resolved but required by nothing: {unreached}")
    return via


def render(name: str, extras: tuple[str, ...], report: dict[str, Any]) -> str:
    """Return the text of one lock file."""
    via = required_by(report, extras)
    versions = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in report["install"]
    }
    environment = report["environment"]
    target = f"{PROJECT}[{','.join(extras)}]" if extras else PROJECT
    lines = [
        f"# {name}: every package {target} needs, pinned. Written by `make lock`",
        "# (requirements/lock.py, with pip's resolver); do not edit.",
        f"# extras: {' '.join(extras)}".rstrip(),
        f"# resolved for: Python {environment['python_full_version']},"
        f" {environment['sys_platform']} {environment['platform_machine']},"
        f" pip {report['pip_version']}",
    ]
    for package in sorted(versions):
        if package == PROJECT:
            continue
        lines.append(f"{package}=={versions[package]}")
        lines.append(f"    # via {', '.join(sorted(via[package]))}")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Resolve and write every lock; return the exit status."""
    primary = HERE / PRIMARY
    order = [PRIMARY, *(name for name in LOCKS if name != PRIMARY)]
    for name in order:
        extras = LOCKS[name]
        report = resolve(extras, None if name == PRIMARY else primary)
        (HERE / name).write_text(render(name, extras, report), "utf-8")
        print(f"wrote requirements/{name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
