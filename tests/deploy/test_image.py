"""The container images: linted by hadolint, and every command and setting they name is real.

No Docker engine runs here, so the images are not built; the linter and these checks stand in.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import zipfile

import pytest

from tests.deploy.tools import DOCKERFILES, ROOT, check_cli_args, run, setting_names, tool

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile):
    done = run([tool("hadolint"), "--no-color", "--failure-threshold", "info", dockerfile])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_runs_tutorstream_as_a_non_root_user(dockerfile):
    text = dockerfile.read_text()
    runtime = text.split("AS runtime", 1)[1]
    assert json.loads(re.search(r"^ENTRYPOINT (.+)$", runtime, re.M).group(1)) == ["tutorstream"]
    check_cli_args(json.loads(re.search(r"^CMD (.+)$", runtime, re.M).group(1)))
    user = re.findall(r"^USER (\S+)$", runtime, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_environment_is_made_of_real_settings(dockerfile):
    declared = set(re.findall(r"\b(TUTORSTREAM_[A-Z0-9_]+)=", dockerfile.read_text()))
    assert declared, "the image sets its data directories"
    assert declared <= setting_names()


def test_build_context_holds_what_the_install_needs_and_no_state():
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") if "*" in ignore else 0] == "*"
    for needed in ("pyproject.toml", "schemas", "inference", "streams", "api", "tutorstream"):
        assert f"!{needed}" in ignore, needed
    for never in ("**/.state", "**/node_modules"):
        assert never in ignore


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_commands_the_build_runs_are_real(dockerfile):
    calls = re.findall(r"/opt/tutorstream/bin/tutorstream ([^>&\\\n]+)", dockerfile.read_text())
    assert calls
    for call in calls:
        check_cli_args(call.split())


def test_the_build_context_installs_the_shipped_model_and_migrations(tmp_path):
    """Build the wheel `pip install .` makes in the image, from what .dockerignore lets in."""
    ignore = (ROOT / ".dockerignore").read_text().split()
    allowed = [p[1:] for p in ignore if p.startswith("!")]
    dropped = {p.removeprefix("**/") for p in ignore if p.startswith("**/")}
    context = tmp_path / "context"
    for name in allowed:
        for path in ROOT.glob(name):
            if path.is_dir():
                shutil.copytree(path, context / path.name, ignore=shutil.ignore_patterns(*dropped))
            else:
                context.mkdir(exist_ok=True)
                shutil.copy2(path, context / path.name)
    done = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            tmp_path / "wheel",
            context,
        ]
    )
    assert done.returncode == 0, done.stderr
    names = zipfile.ZipFile(next((tmp_path / "wheel").glob("*.whl"))).namelist()
    model = "inference/models/tutorstream-learner/1/"
    for needed in ("model.onnx", "checksums.sha256", "config.json"):
        assert model + needed in names
    assert any(n.startswith("schemas/sql/0001_core") for n in names)
    assert not any("node_modules" in n or ".state" in n for n in names)


def _documented_calls() -> list[list[str]]:
    """`tutorstream ...` in backticks, shell lines that run it, and `compose run ... api ...`."""
    texts = [
        (ROOT / "docs" / "operations.md").read_text(),
        (ROOT / "helm" / "tutorstream" / "templates" / "NOTES.txt").read_text(),
        (ROOT / "deploy" / "compose.yaml").read_text(),
    ]
    calls = []
    for text in texts:
        calls += [m.split()[1:] for m in re.findall(r"`(tutorstream [^`]+)`", text)]
        for line in text.splitlines():
            found = re.search(r"(?:^\s*|-- )tutorstream ([^|;&#]+)$", line.strip())
            found = found or re.search(r"compose .* run --rm api ([^|;&#]+)$", line)
            if found:
                calls.append(found.group(1).split())
    return calls


def test_commands_the_operations_guide_and_notes_give_are_real():
    calls = _documented_calls()
    assert len(calls) >= 4
    for call in calls:
        # a shell variable stands for a value the reader gives
        check_cli_args(["value" if "$" in a else a for a in call])
