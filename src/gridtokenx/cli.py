"""The `gridtokenx` command."""

from __future__ import annotations

import typer

app = typer.Typer(help="GridTokenX platform command line.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks, reported as ratios against this machine's own ceilings.")
app.add_typer(bench_app, name="bench")
