"""Messages for people, on stderr only: stdout carries records.

Verbosity is process-wide: -1 quiet (errors only), 0 normal, 1 verbose (-v).
Progress bars appear only when stderr is a terminal and not quiet, so pipelines, cron jobs
and CI logs stay clean.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator

_verbosity = 0
_console = None


def configure(quiet: bool = False, verbose: int = 0) -> None:
    global _verbosity
    # Set, not raised: run() may be called many times in one process (tests, notebooks).
    _verbosity = -1 if quiet else verbose


def verbosity() -> int:
    return _verbosity


def console():
    """The rich console bound to stderr, created on first use (rich is not imported on --help)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True, highlight=False, soft_wrap=True)
    return _console


def _emit(text: str, style: str | None = None) -> None:
    if sys.stderr.isatty():
        console().print(text, style=style, markup=False)
    else:
        print(text, file=sys.stderr, flush=True)


def info(text: str) -> None:
    """A summary line: shown unless -q."""
    if _verbosity >= 0:
        _emit(text)


def detail(text: str) -> None:
    """Extra detail: shown with -v."""
    if _verbosity >= 1:
        _emit(text, style="dim")


def warn(text: str) -> None:
    if _verbosity >= 0:
        _emit(f"warning: {text}", style="yellow")


def error(text: str) -> None:
    """Always shown, also with -q."""
    _emit(f"error: {text}", style="bold red")


def hint(text: str) -> None:
    """How to fix an error: shown with it, also with -q."""
    _emit(f"hint: {text}")


class _Progress:
    """Counts work; draws a bar only when one is wanted."""

    def __init__(self, bar, task):
        self._bar, self._task = bar, task
        self.count = 0

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)


def _progress_wanted() -> bool:
    return _verbosity >= 0 and sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


@contextmanager
def progress(description: str, total: int | None = None, unit: str = "records") -> Iterator[_Progress]:
    """Context manager yielding an object with .update(n); a bar on a terminal, silent elsewhere."""
    if not _progress_wanted():
        yield _Progress(None, None)
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn(unit), TimeElapsedColumn()]
    with Progress(*columns, console=console(), transient=True) as bar:
        yield _Progress(bar, bar.add_task(description, total=total))


class Timer:
    """Wall-clock seconds since creation, for summaries."""

    def __init__(self):
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
