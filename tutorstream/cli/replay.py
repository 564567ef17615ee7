"""`tutorstream replay`: export or rebuild from a slice of the topics' history."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from schemas.topics import LMS_EVENTS
from tutorstream.settings import Settings

if TYPE_CHECKING:
    from streams.replay.pool import RebuildSpec
    from streams.replay.reader import Progress
    from streams.settings import StreamSettings

app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Replay history from the topics under a consumer group of the replay's own; it stops "
        "at the end offsets captured when it starts and never moves the live workers' offsets."
    ),
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@app.command("run")
def run(
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="export (JSON lines or Parquet, see --format), rebuild (into the live "
            "tables) or rescore (--model, into a shadow schema).",
        ),
    ] = "export",
    model: Annotated[
        str | None, typer.Option(help="Model for --mode rescore, name@version.")
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option(help="Topic to read (repeatable); lms.events.v1 with the topic prefix."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Offset, partition:offset pairs or ISO timestamp."),
    ] = None,
    stop: Annotated[
        str | None,
        typer.Option("--to", help="Stop before: offset, partition:offset pairs or timestamp."),
    ] = None,
    class_id: Annotated[str | None, typer.Option("--class", help="Only this class.")] = None,
    learner: Annotated[
        list[str] | None, typer.Option(help="Only this pseudonymous learner (repeatable).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Export file (jsonl), or directory of part files (parquet)."),
    ] = None,
    export_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="Export format: jsonl (one file, appended) or parquet (pyarrow; a directory "
            "of part files, one per durable batch).",
        ),
    ] = "jsonl",
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Progress file; an interrupted replay resumes from it."),
    ] = None,
    replay_id: Annotated[
        str | None, typer.Option(help="Names the replay's consumer group; random if omitted.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Records per durable batch.")] = 2000,
    max_batches: Annotated[
        int | None, typer.Option(min=1, help="Stop (checkpointed) after this many batches.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print partitions, offsets and counts; read nothing.")
    ] = False,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes for rebuild and rescore, each holding a share of the "
            "partitions (needs a topic keyed by learner pseudonym, as producers key it); "
            "--max-batches then counts per process.",
        ),
    ] = 1,
) -> None:
    """Replay a selection of the events topic: export it, or rebuild the store from it."""
    from streams.replay.checkpoint import Checkpoint
    from streams.replay.exceptions import ReplayError
    from streams.replay.outputs import JsonlExport, Output, ParquetExport
    from streams.replay.plan import Bound, Mode, Selection, describe
    from streams.replay.reader import Replay, run_sync
    from streams.settings import StreamSettings
    from tutorstream.stack import StackError, database_url, kafka_bootstrap

    wiring = Settings()
    try:
        bootstrap = kafka_bootstrap(wiring)
        chosen = Mode(mode)
        stream = StreamSettings(kafka_bootstrap=bootstrap, publish_live=False)
        selection = Selection(
            topics=tuple(topic or [stream.topic(LMS_EVENTS.name)]),
            start=None if start is None else Bound.parse(start),
            stop=None if stop is None else Bound.parse(stop),
            class_id=class_id,
            learners=frozenset(learner or ()),
        )
    except (StackError, ReplayError, ValueError) as err:
        raise _fail(str(err)) from None
    replay = Replay(
        bootstrap=bootstrap,
        selection=selection,
        pseudonym_key=stream.pseudonym_key.get_secret_value().encode(),
        replay_id=replay_id or uuid.uuid4().hex[:12],
        checkpoint=Checkpoint(checkpoint),
        batch_size=batch_size,
        max_batches=max_batches,
        on_progress=_progress_printer(),
        profile_files=tuple(str(path) for path in stream.profiles.paths()),
        default_profile=stream.profiles.default,
    )
    try:
        if dry_run:
            for line in describe(replay.ranges()):
                typer.echo(line)
            return
        if chosen is Mode.EXPORT:
            if out is None:
                raise _fail("--mode export needs --out PATH")
            output: Output
            if export_format == "parquet":
                output = ParquetExport(out)
            elif export_format == "jsonl":
                output = JsonlExport(out)
            else:
                raise _fail(f"--format must be jsonl or parquet, not {export_format!r}")
            progress = run_sync(replay, output)
        else:
            if chosen is Mode.RESCORE and model is None:
                raise _fail("--mode rescore needs --model name@version")
            spec = _rebuild(stream, database_url(wiring), model if chosen is Mode.RESCORE else None)
            if processes > 1:
                from streams.replay.pool import run_rebuild

                progress = run_rebuild(replay, spec, processes)
            else:
                progress = run_sync(replay, spec.build())
        typer.echo("", err=True)
    except (StackError, ReplayError) as err:
        raise _fail(str(err)) from None
    except KeyboardInterrupt:
        typer.echo("\ninterrupted; run the same command again to resume", err=True)
        raise typer.Exit(130) from None
    typer.echo(
        f"replayed {progress.records:,} records: {progress.events:,} events, "
        f"{progress.invalid:,} invalid (left to the DLQ), {progress.rate:,.0f} rec/s"
    )


def _rebuild(stream: StreamSettings, url: str, model_ref: str | None = None) -> RebuildSpec:
    """Return what a rebuild writes with (the live model), or a rescore (``model_ref``)."""
    from schemas.topics import LMS_EVENTS as EVENTS
    from streams.replay.pool import RebuildSpec
    from streams.replay.rebuild import shadow_schema
    from streams.store import migrate

    store = stream.store
    ref = _resolve_ref(model_ref or stream.model)
    if model_ref is not None:
        # a rescore writes only to a fresh schema of its own, never to the live tables
        shadow = shadow_schema(ref)
        migrate(url, schema=shadow)
        store = store.model_copy(update={"db_schema": shadow})
        typer.echo(f"rescoring with {ref} into schema {shadow}", err=True)
    return RebuildSpec(
        database_url=url,
        store=store,
        partitions=EVENTS.partitions,
        model_ref=ref,
        registry_roots=() if stream.model_dir is None else (stream.model_dir,),
        policy=stream.policy,
        dedupe_window_s=stream.dedupe_window_s,
        dedupe_max_ids=stream.dedupe_max_ids,
    )


def _progress_printer() -> Callable[[Progress], None]:
    last = [0.0]

    def show(progress: Progress) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            typer.echo(f"\r{progress.line()}", err=True, nl=False)

    return show


@app.command("diff")
def diff(
    model: Annotated[
        str | None,
        typer.Option(help="The rescore to compare: its model name@version (its shadow schema)."),
    ] = None,
    shadow: Annotated[
        str | None, typer.Option(help="The shadow schema to compare, instead of --model.")
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            help="Schema to compare with: the live tables' (TUTORSTREAM_STORE__DB_SCHEMA) by "
            "default, or another shadow schema."
        ),
    ] = None,
    class_id: Annotated[str | None, typer.Option("--class", help="Only this class.")] = None,
    limit: Annotated[
        int, typer.Option(min=0, help="Most learners alerted differently to list.")
    ] = 50,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the comparison as JSON here.")
    ] = None,
) -> None:
    """Compare a rescore with the live tables: per-state agreement, precision, recall, alerts."""
    import orjson

    from streams.replay.diff import compare, format_table
    from streams.replay.exceptions import ReplayDiffError
    from streams.replay.rebuild import shadow_schema
    from streams.settings import StreamSettings
    from tutorstream.stack import StackError, database_url

    if (model is None) == (shadow is None):
        raise _fail("name the rescore with --model name@version or --shadow SCHEMA")
    wiring = Settings()
    try:
        url = database_url(wiring)
        if shadow is None:
            shadow = shadow_schema(_resolve_ref(str(model)))
        base = against or StreamSettings().store.db_schema
        found = compare(url, shadow, base, class_id=class_id, limit=limit)
    except (StackError, ReplayDiffError, ValueError) as err:
        raise _fail(str(err)) from None
    typer.echo(format_table(found))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_bytes(orjson.dumps(found.to_dict(), option=orjson.OPT_INDENT_2))
        typer.echo(f"wrote {json_out}")


def _resolve_ref(model_ref: str) -> str:
    """Return ``model_ref`` as a rescore resolves it (``name@latest`` to a version)."""
    from inference.registry import ModelRegistry
    from streams.settings import StreamSettings

    model_dir = StreamSettings().model_dir
    roots = [] if model_dir is None else [Path(model_dir)]
    return ModelRegistry.with_packaged(roots).load(model_ref).ref
