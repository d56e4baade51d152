"""Options shared by record commands, so every command spells them the same way."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from enum import Enum
from typing import Annotated, List, Optional

import typer


class Format(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"


Inputs = Annotated[
    Optional[List[str]],
    typer.Argument(help="Input files or Parquet directories; '-' (the default) is stdin.",
                   show_default=False, metavar="INPUT"),
]
Output = Annotated[
    str, typer.Option("-o", "--output", help="Output file; '-' is stdout.", metavar="PATH"),
]
FromFormat = Annotated[
    Optional[Format],
    typer.Option("--from", help="Input format (default: from the extension, sniffed on stdin).",
                 show_default=False),
]
ToFormat = Annotated[
    Optional[Format],
    typer.Option("--to", help="Output format (default: from the extension; JSONL on stdout).",
                 show_default=False),
]
class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def opt(*flags: str, help: str, **kw):
    """typer.Option with the help text required: every flag is documented in --help and man."""
    return typer.Option(*flags, help=help, **kw)


Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr.")]
Verbose = Annotated[int, typer.Option("-v", "--verbose", count=True, help="More detail on stderr.")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same output.")]


def setup(quiet: bool, verbose: int) -> None:
    """Apply -q/-v; every command body calls this first."""
    from ehrkit import log

    log.configure(quiet=quiet, verbose=verbose)


@contextmanager
def imports_without_gc():
    """Run a command's heavy imports with the cyclic garbage collector paused. Importing polars
    makes hundreds of thousands of objects and no garbage, and the collector would walk them
    again and again: about 0.01 s of a 0.2 s start (measured), which a short command in a
    pipeline pays on every run."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def inputs(paths: Optional[List[str]]) -> list[str]:
    return list(paths) if paths else ["-"]


def fmt(value: Optional[Format]) -> Optional[str]:
    return value.value if value is not None else None
