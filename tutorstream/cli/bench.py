"""`tutorstream bench <what>`: benchmarks that print a table and write JSON."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Benchmarks: each prints a table and writes JSON.")
