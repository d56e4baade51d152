"""Deterministic synthetic data for the demo, the tests and the benchmarks.

Every generator is a pure function of (seed, size) that streams record batches, so the same
seed always gives the same records and millions of records never sit in memory at once.
Each generator plants signal (a label that depends learnably on the inputs) so tests can
check that models learn. Randomness is drawn per entity (patient, sentence) from a generator
seeded by (seed, entity index): output does not depend on batch size.
"""

from __future__ import annotations

import random
from typing import Iterable, Iterator

import pyarrow as pa

BATCH_ROWS = 2048


def entity_rng(seed: int, kind: str, index: int) -> random.Random:
    """A random generator for one entity, independent of every other entity."""
    return random.Random(f"ehrkit:{kind}:{seed}:{index}")


def batched(rows: Iterable[dict], schema: pa.Schema, size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Group dict rows into record batches of the declared schema."""
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield pa.RecordBatch.from_pylist(chunk, schema=schema)
            chunk = []
    if chunk:
        yield pa.RecordBatch.from_pylist(chunk, schema=schema)
