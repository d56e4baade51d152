"""Length-sorted batching for inference: padding only to each batch's longest row.

Rows of a chunk are sorted by length, longest first (a batch too large for the device fails on
the first batch, not after an hour), and cut into batches by a budget of padded tokens (rows x
the batch's longest row) and/or a number of rows. Nothing here touches torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BATCH_TOKENS = 16_384


@dataclass(frozen=True)
class Budget:
    """How large a batch may be: `tokens` padded tokens, `rows` rows; None is no limit."""

    tokens: int | None = DEFAULT_BATCH_TOKENS
    rows: int | None = None

    @classmethod
    def of(cls, batch_tokens: int | None, batch_size: int | None) -> "Budget":
        """--batch-size alone means exactly that many rows; otherwise a token budget."""
        if batch_tokens is None and batch_size is not None:
            return cls(tokens=None, rows=batch_size)
        return cls(tokens=batch_tokens or DEFAULT_BATCH_TOKENS, rows=batch_size)


def plan(lengths: np.ndarray, budget: Budget) -> list[np.ndarray]:
    """Row indices of each batch: rows with length > 0, longest first, each batch within budget
    (a row longer than the token budget is a batch of its own).

    >>> [b.tolist() for b in plan(np.array([3, 9, 0, 4, 8]), Budget(tokens=18))]
    [[1, 4], [3, 0]]
    >>> [b.tolist() for b in plan(np.array([3, 9, 4, 8]), Budget(tokens=None, rows=3))]
    [[1, 3, 2], [0]]
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    order = order[np.asarray(lengths)[order] > 0]
    batches, start = [], 0
    while start < len(order):
        size = len(order) - start
        if budget.rows is not None:
            size = min(size, budget.rows)
        if budget.tokens is not None:  # the first row of a batch is its longest
            size = min(size, max(1, budget.tokens // int(lengths[order[start]])))
        batches.append(order[start:start + size])
        start += size
    return batches


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges [start, start + length) per row, without a Python loop.

    >>> ranges(np.array([10, 0]), np.array([2, 3])).tolist()
    [10, 11, 0, 1, 2]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    before = np.cumsum(lengths) - lengths
    within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(before, lengths)
    return np.repeat(np.asarray(starts, dtype=np.int64), lengths) + within


def pad_rows(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray, pad_id: int,
             lengths: np.ndarray | None = None, left: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a ragged array (flat values + offsets) as [batch, longest] right-padded with
    `pad_id` (left-padded with `left`), and the int64 attention mask; `lengths` (default: the
    full rows) cuts rows short, keeping their first values.

    >>> ids, mask = pad_rows(np.array([5, 6, 7, 8]), np.array([0, 3, 4]), np.array([1, 0]), 0)
    >>> ids.tolist(), mask.tolist()
    ([[8, 0, 0], [5, 6, 7]], [[1, 0, 0], [1, 1, 1]])
    """
    starts = offsets[:-1][rows]
    sizes = np.diff(offsets)[rows] if lengths is None else np.asarray(lengths)[rows]
    width = int(sizes.max()) if len(sizes) else 0
    ids = np.full((len(rows), width), pad_id, dtype=flat.dtype if flat.dtype.kind == "i" else np.int64)
    shift = width - sizes if left else np.zeros_like(sizes)
    target = ranges(np.arange(len(rows), dtype=np.int64) * width + shift, sizes)
    ids.reshape(-1)[target] = flat[ranges(starts, sizes)]
    position = np.arange(width)[None, :]
    mask = (position >= shift[:, None]) & (position < (shift + sizes)[:, None])
    return ids.astype(np.int64), mask.astype(np.int64)
