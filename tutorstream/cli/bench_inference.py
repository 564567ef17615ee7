"""`tutorstream bench inference`: learner-model throughput, ONNX Runtime against PyTorch eager."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from inference.registry import DEFAULT_MODEL


def inference(
    model: Annotated[
        str, typer.Option(help="Model reference, name@version or name@latest.")
    ] = DEFAULT_MODEL,
    registry: Annotated[
        list[Path] | None,
        typer.Option(help="Extra registry root searched before the packaged models."),
    ] = None,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for both engines.")] = 2,
    smoke: Annotated[bool, typer.Option(help="A few calls per point, for CI.")] = False,
    out: Annotated[Path, typer.Option(help="Where the JSON goes.")] = Path(
        "bench-results/inference.json"
    ),
) -> None:
    """Windows/s and p50/p99 latency at batch 1, 64 and 512: ONNX Runtime vs PyTorch eager."""
    # spinning OpenMP workers distort PyTorch's figures when the cores are shared
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from inference.bench import format_table, run_inference_bench, write_json

    report = run_inference_bench(model, registry or [], threads=threads, smoke=smoke)
    typer.echo(format_table(report))
    typer.echo(f"wrote {write_json(report, out)}")
