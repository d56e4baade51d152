"""How many threads `notes clean` runs. Free of polars: polars reads POLARS_MAX_THREADS once,
when it is imported, so the command settles it before anything imports polars."""

from __future__ import annotations

import os


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """One worker thread more than there are cores. A worker hands each chunk's JSON parsing
    and encoding to polars' thread pool and waits for it; the extra worker keeps every core
    busy meanwhile (measured on 2 cores: about 4% less wall time than one per core)."""
    return cores() + 1


def set_polars_pool(workers: int) -> None:
    """Size polars' own thread pool for `workers` worker threads (before polars is imported).

    The workers run the cleaning and segmenting expressions in their own threads (select_seq),
    so the pool only parses and encodes JSON: about a quarter of the work. Half as many pool
    threads as workers leaves it room to spare without oversubscribing the cores; a pool as
    large as the machine would compete with the workers, and on 2 cores even a second pool
    thread costs more than it brings (measured). One worker keeps polars' default pool."""
    if workers > 1:
        os.environ.setdefault("POLARS_MAX_THREADS", str(max(1, workers // 2)))
