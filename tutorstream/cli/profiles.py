"""`tutorstream profiles check`: how a producer's sample maps through a statement profile."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer

from schemas.profiles import (
    BUILTIN_ID,
    ProfileError,
    ProfileSet,
    load_profile_file,
    load_profiles,
)
from schemas.profiles.check import SampleReport, check_sample
from schemas.profiles.compiled import compile_profiles

app = typer.Typer(
    help="Statement profiles: how each producer's vocabulary maps.", no_args_is_help=True
)


def _profiles(profile: str) -> tuple[ProfileSet, str]:
    """Load the configured profiles, plus ``profile`` when it names a file; return its id."""
    from streams.settings import StreamSettings

    settings = StreamSettings().profiles
    files = settings.paths()
    path = Path(profile)
    if profile.endswith((".yaml", ".yml")) or path.is_file():
        chosen = load_profile_file(path).profile
        if path not in files:
            files.append(path)
        return load_profiles(files, settings.default), chosen
    return load_profiles(files, settings.default), profile


def _print(report: SampleReport) -> None:
    typer.echo(
        f"profile {report.profile}: {report.lines:,} line(s), {report.modelled:,} modelled, "
        f"{report.unmodelled:,} unmodelled, {report.invalid_count:,} invalid"
    )
    typer.echo("\nverbs")
    for verb, entry in sorted(report.verbs.items(), key=lambda kv: -kv[1].statements):
        mapped = [f"{t} {n:,}" for t, n in entry.event_types.most_common()]
        mapped += [f"unmodelled ({why}) {n:,}" for why, n in entry.unmodelled.most_common()]
        typer.echo(f"  {entry.statements:>7,}  {verb}")
        typer.echo(f"           -> {'; '.join(mapped)}")
    typer.echo("\nfields (found / events that need them)")
    for name, found in sorted(report.fields.items()):
        typer.echo(f"  {name:<18} {found.found:>7,} / {found.of:<7,} {found.share:>5.0%}")
    if report.default_class:
        typer.echo(f"  class from the profile's default_class: {report.default_class:,}")
    if report.classes:
        shown = ", ".join(f"{c} ({n:,})" for c, n in report.classes.most_common(5))
        typer.echo(f"  classes: {shown}")
    if report.skills:
        shown = ", ".join(f"{s} ({n:,})" for s, n in report.skills.most_common(8))
        typer.echo(f"  skills: {shown}")
    if report.hint_levels:
        shown = ", ".join(f"{lvl}: {n:,}" for lvl, n in sorted(report.hint_levels.items()))
        typer.echo(f"  hint levels: {shown}")
    if report.invalid:
        typer.echo("\ninvalid lines")
        for line, path, reason in report.invalid:
            typer.echo(f"  line {line}: {path or '(record)'}: {reason}")
        if report.invalid_count > len(report.invalid):
            typer.echo(f"  ... and {report.invalid_count - len(report.invalid):,} more")
    fit, problems, warnings = report.verdict()
    typer.echo("")
    for warning in warnings:
        typer.echo(f"warning: {warning}")
    for problem in problems:
        typer.echo(f"not fit: {problem}")
    typer.echo("fit to go live" if fit else "NOT fit to go live")


@app.command("check")
def check(
    sample: Annotated[Path, typer.Argument(help="A JSON Lines sample of the producer's records.")],
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="A profile id (built-in, or from TUTORSTREAM_PROFILES__FILES) or a profile "
            "file (YAML) to check it with.",
        ),
    ] = BUILTIN_ID,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report here as JSON.")
    ] = None,
) -> None:
    """Report how a sample maps: per verb and per field; exit 0 when fit to go live, 1 if not.

    Exit status 2: the sample or a profile cannot be read.
    """
    try:
        loaded, chosen = _profiles(profile)
    except ProfileError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    compiled = compile_profiles(loaded)
    if chosen not in compiled:
        typer.echo(f"error: no profile {chosen!r}; loaded: {', '.join(sorted(compiled))}", err=True)
        raise typer.Exit(2)
    try:
        with sample.open("rb") as lines:
            report = check_sample(lines, compiled[chosen])
    except OSError as err:
        typer.echo(f"error: cannot read {sample}: {err}", err=True)
        raise typer.Exit(2) from None
    _print(report)
    if json_out is not None:
        json_out.write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    fit, _, _ = report.verdict()
    raise typer.Exit(0 if fit else 1)
