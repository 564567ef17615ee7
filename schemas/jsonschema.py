"""JSON Schema files generated from the contract models, for producers and consumers anywhere.

``python -m schemas.jsonschema`` writes them into ``schemas/json/``; ``--check`` only reports
files that differ from what the models generate (the unit tests fail on any difference, so the
committed files never drift from the code).

Descriptions come from the models' docstrings, and how a docstring's indentation is kept differs
between releases of pydantic and msgspec. Every description is therefore cleaned the way
:func:`inspect.cleandoc` cleans a docstring, so the files depend on the models, not on the
library release that renders them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec
from pydantic import BaseModel

from schemas.events import LearningEvent
from schemas.native import NativeEvent
from schemas.profiles import StatementProfile
from schemas.records import RECORD_MODELS
from schemas.xapi import Statement

SCHEMA_DIR: Final = Path(__file__).parent / "json"
_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def _xapi_statement() -> dict[str, Any]:
    schema = msgspec.json.schema(Statement)
    schema["title"] = "XapiStatement"
    schema["description"] = (
        "Structure of an xAPI 1.0.3 statement as tutorstream reads it (properties, types, "
        "required properties). The formats and cross-property rules of the specification (IRIs, "
        "UUIDs, language tags, timestamps with a time zone, durations, one identifier per "
        "Agent, ...) are checked by schemas.xapi on top of it."
    )
    return schema


def _schemas() -> dict[str, Callable[[], dict[str, Any]]]:
    models: dict[str, type[BaseModel]] = {
        "LearningEvent": LearningEvent,
        "NativeEvent": NativeEvent,
        "StatementProfile": StatementProfile,
        **RECORD_MODELS,
    }
    found: dict[str, Callable[[], dict[str, Any]]] = {
        name: model.model_json_schema for name, model in models.items()
    }
    found["XapiStatement"] = _xapi_statement
    return found


def clean_descriptions(node: Any) -> Any:
    """Return ``node`` with every ``description`` string cleaned like a docstring."""
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value)
            if key == "description" and isinstance(value, str)
            else clean_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [clean_descriptions(item) for item in node]
    return node


def render() -> dict[str, str]:
    """Return every schema file's name and exact text."""
    files: dict[str, str] = {}
    for name, build in sorted(_schemas().items()):
        schema = {"$schema": _DIALECT, **clean_descriptions(build())}
        files[f"{name}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def drifted(directory: Path = SCHEMA_DIR) -> list[str]:
    """Return the names of files that are missing, stale, or no longer generated."""
    expected = render()
    stale = [
        name
        for name, text in expected.items()
        if not (directory / name).is_file() or (directory / name).read_text("utf-8") != text
    ]
    extra = (
        sorted(path.name for path in directory.glob("*.json") if path.name not in expected)
        if directory.is_dir()
        else []
    )
    return stale + extra


def write(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file (and remove ones no model generates); return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = render()
    for path in directory.glob("*.json"):
        if path.name not in expected:
            path.unlink()
    written = []
    for name, text in expected.items():
        path = directory / name
        path.write_text(text, "utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write the schema files, or with ``--check`` report drift; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m schemas.jsonschema", description=__doc__)
    parser.add_argument("--check", action="store_true", help="report drift, write nothing")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="target directory")
    args = parser.parse_args(argv)
    if args.check:
        stale = drifted(args.dir)
        for name in stale:
            print(f"drifted: {args.dir / name}")
        if stale:
            print("run: python -m schemas.jsonschema")
        return 1 if stale else 0
    for path in write(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
