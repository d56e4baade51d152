"""`ehrkit notes`: clinical note processing."""

from __future__ import annotations

import typer

app = typer.Typer(help="Clean and sentence-segment clinical notes.", no_args_is_help=True)
