"""Aggregate chunk-level scores to one score per group (an admission, a patient).

ClinicalBERT scores each 512-token chunk of an admission's notes and combines them as
(P_max + P_mean * n / c) / (1 + n / c) with c = 2 (methods.md 1.7): the max alone is noisy for
long notes, and the mean term, whose weight grows with the number of chunks n, lets many chunks
vote. Plain `mean` and `max` are the two ends of that compromise. A group's label is the min of
its chunk labels (they are all equal in ClinicalBERT's data; min is its rule when they are not).

All three sort by group once and reduce each group's contiguous run.
"""

from __future__ import annotations

import numpy as np

from ehrkit.errors import DataError, UsageError

HOW = ("clinicalbert", "mean", "max")


def _runs(groups, scores, labels):
    """Group keys (sorted), each row's sort order, the start of each group's run, sizes."""
    groups = np.asarray(groups)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(groups)
    if len(scores) != n or len(labels) != n:
        raise DataError(f"aggregate: {n} groups, {len(scores)} scores and {len(labels)} labels differ")
    bad = ~np.isfinite(scores)
    if bad.any():
        raise DataError(f"aggregate: 'score' is missing or not finite at row {int(np.flatnonzero(bad)[0])}")
    try:
        keys, inv, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    except TypeError:  # mixed id types: compare as text
        keys, inv, sizes = np.unique(groups.astype(str), return_inverse=True, return_counts=True)
    order = np.argsort(inv.reshape(-1), kind="stable")
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    return keys, scores[order], labels[order], starts, sizes


def _label_min(labels, starts):
    return np.minimum.reduceat(labels, starts) if len(labels) else labels


def clinicalbert(groups, scores, labels, c: float = 2.0):
    """(group keys, aggregated scores, group labels): (P_max + P_mean n/c) / (1 + n/c) per group.
    Chunks {0.9, 0.1} give (0.9 + 0.5 * 2 / 2) / (1 + 2 / 2) = 0.70."""
    if not c > 0:
        raise UsageError(f"the scaling factor c must be positive, not {c}")
    keys, s, y, starts, n = _runs(groups, scores, labels)
    if not len(s):
        return keys, s, y
    top = np.maximum.reduceat(s, starts)
    mean = np.add.reduceat(s, starts) / n
    return keys, (top + mean * n / c) / (1 + n / c), _label_min(y, starts)


def mean(groups, scores, labels):
    """(group keys, mean score per group, group labels)."""
    keys, s, y, starts, n = _runs(groups, scores, labels)
    if not len(s):
        return keys, s, y
    return keys, np.add.reduceat(s, starts) / n, _label_min(y, starts)


def max(groups, scores, labels):  # shadows the builtin here, on purpose: the aggregation's name
    """(group keys, max score per group, group labels)."""
    keys, s, y, starts, _ = _runs(groups, scores, labels)
    if not len(s):
        return keys, s, y
    return keys, np.maximum.reduceat(s, starts), _label_min(y, starts)


def aggregate(groups, scores, labels, how: str = "clinicalbert", c: float = 2.0):
    """Dispatch by name: "clinicalbert" (with `c`), "mean" or "max"."""
    if how not in HOW:
        raise UsageError(f"aggregation must be one of {', '.join(HOW)}, not {how!r}")
    if how == "clinicalbert":
        return clinicalbert(groups, scores, labels, c)
    return {"mean": mean, "max": max}[how](groups, scores, labels)

