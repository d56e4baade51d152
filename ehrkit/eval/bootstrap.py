"""Bootstrap confidence intervals for `ehrkit evaluate`.

The method is the MIMIC-III benchmark's: resample the test predictions with replacement (n
draws from n rows, an exact multinomial, not the Poisson approximation, so small test sets get
the reference procedure's intervals), recompute each metric, report percentiles.

Design choices, and why:

- A resample is a vector of per-row counts, and every metric in `ehrkit.eval.metrics` takes
  counts as `weights` with the same result as repeating rows, so rows need not be copied.
  (The MIMIC-III benchmark uses 10,000 resamples; copying a large test set that often is what
  makes the usual loop slow.)
- `clusters` (patient ids): rows of one patient are correlated (decompensation has one row per
  hour of a stay), so resampling rows understates the variance. Drawing patients with
  replacement and bringing all of a drawn patient's rows along, once per draw, does not.
- Determinism: resample i draws from its own stream, spawned from `seed` by numpy's
  SeedSequence, so the result does not depend on how resamples are blocked or threaded.
- Speed (`bootstrap_binary`): every binary metric is a function of the counts per cell, a cell
  being one (distinct score, label) pair, so a resample only has to produce cell counts; the
  curve metrics then come from cumulative sums over the score groups, for a 2-D block of
  resamples at once (`metrics.binary_from_groups`). Two exact ways to get cell counts:
  * rows: draw n row indices, look up their cells (one gather from a 32-bit table) and count
    them (one bincount). These are the draws `resample_counts` makes, so the result equals
    `bootstrap_generic` over the same counts (up to float rounding).
  * cells: when there are far fewer cells than rows (tied scores, e.g. rounded to 4 decimals),
    draw the cell counts directly. Summing multinomial counts over cells gives again a
    multinomial, Multinomial(n, cell size / n): the same distribution exactly, for one binomial
    per cell instead of n random indices. Other random numbers than the rows way, so the
    intervals differ from it within Monte Carlo error only.
  Threads: numpy releases the GIL in its random draws and most array loops, so blocks of
  resamples can overlap on two threads; the per-resample streams keep the numbers identical
  whatever the thread count.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ehrkit.errors import DataError, UsageError
from ehrkit.eval.metrics import binary_from_groups, check_binary_labels, check_scores, rank_groups

DEFAULT_METRICS = ("auroc", "auprc_trapezoid", "average_precision")
_CELLS_RATIO = 16  # draw cell counts directly when cells <= rows / 16: one binomial per cell
#                    costs about as much as 16 drawn, looked-up and counted row indices
_BLOCK_CELLS = 1 << 21  # resamples per block x cells: bounds a block's memory (~16 MB per array)


def _streams(seed: int, resamples: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(seed).spawn(resamples)


class _Units:
    """What is drawn with replacement: rows, or clusters of rows."""

    def __init__(self, n_rows: int, clusters=None):
        self.n_rows = n_rows
        if clusters is None:
            self.m, self.of_row = n_rows, None
        else:
            clusters = np.asarray(clusters)
            if clusters.shape[0] != n_rows:
                raise DataError(f"bootstrap: {clusters.shape[0]} cluster ids for {n_rows} rows")
            try:
                _, of_row = np.unique(clusters, return_inverse=True)
            except TypeError:  # mixed types (e.g. ints and strings): compare as text
                _, of_row = np.unique(clusters.astype(str), return_inverse=True)
            self.of_row = of_row.reshape(-1)
            self.m = int(self.of_row.max()) + 1 if n_rows else 0
        self.dtype = np.int32 if self.m < 2**31 else np.int64

    def draw(self, stream: np.random.SeedSequence) -> np.ndarray:
        """Indices of the units drawn: m draws from m units."""
        return np.random.default_rng(stream).integers(0, max(self.m, 1), self.m, dtype=self.dtype)

    def row_counts(self, stream: np.random.SeedSequence) -> np.ndarray:
        counts = np.bincount(self.draw(stream), minlength=self.m)
        return counts if self.of_row is None else counts[self.of_row]


def resample_counts(n_rows: int, resamples: int, seed: int = 0, clusters=None) -> Iterator[np.ndarray]:
    """Per resample, how many times each row is drawn (int64, sums to n_rows without clusters).

    With `clusters` (one hashable id per row, e.g. patient ids), the clusters are drawn with
    replacement (as many draws as clusters) and each row gets its cluster's count."""
    units = _Units(n_rows, clusters)
    for stream in _streams(seed, resamples):
        yield units.row_counts(stream)


def _accepts_weights(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "weights" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _take(array, index: np.ndarray):
    if isinstance(array, np.ndarray):
        return array[index]
    return [array[i] for i in index.tolist()]


def bootstrap_generic(fn: Callable[..., dict], arrays: Sequence, resamples: int = 1000, seed: int = 0,
                      clusters=None, by: str = "auto") -> dict[str, np.ndarray]:
    """Any metric function over resamples: {metric: array of `resamples` values}.

    `fn(*arrays, weights=counts)` when `fn` takes `weights` (every function in
    ehrkit.eval.metrics does), else `fn(*arrays_indexed)` on the drawn rows, repeated
    (by="weights" or "index" forces one). A metric missing from a resample's result is NaN."""
    if by not in ("auto", "weights", "index"):
        raise UsageError(f"by must be auto, weights or index, not {by!r}")
    arrays = list(arrays)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise DataError("bootstrap: the arrays differ in length")
    use_weights = by == "weights" or (by == "auto" and _accepts_weights(fn))
    out: dict[str, np.ndarray] = {}
    for i, counts in enumerate(resample_counts(n, resamples, seed, clusters)):
        if use_weights:
            values = fn(*arrays, weights=counts)
        else:
            index = np.repeat(np.arange(n), counts)
            values = fn(*(_take(a, index) for a in arrays))
        for name, value in values.items():
            out.setdefault(name, np.full(resamples, np.nan))[i] = value
    return out


class _BinaryCells:
    """Score vectors over the same rows, reduced to cell ids (2 * score group + label).

    With `merge`, each run of consecutive score groups that hold no positive row becomes one
    group: no curve metric can tell the difference (between two positives, more negatives only
    add points with the same recall and lower precision, and AUROC counts them the same), and
    continuous scores then have about as many groups as positives instead of rows. Brier and
    ECE need every score, so they turn merging off; a run never straddles `threshold`."""

    def __init__(self, y: np.ndarray, scores: list[np.ndarray], merge: bool, threshold: float):
        self.groups, self.keys = [], []
        for p in scores:
            desc, g = rank_groups(p)
            if merge:
                desc, g = _merge_negative_runs(desc, g, y, threshold)
            self.groups.append(desc)
            self.keys.append((2 * g + y).astype(np.int32 if 2 * len(desc) < 2**31 else np.int64))
        self.widths = [2 * len(d) for d in self.groups]
        if len(scores) == 1:  # no sort needed: cells are the non-empty keys
            sizes = np.bincount(self.keys[0], minlength=self.widths[0])
            self.joint = np.flatnonzero(sizes)
            self.sizes = sizes[self.joint]
            self.of_joint = [self.joint]
            return
        joint = self.keys[0].astype(np.int64)
        for key, width in zip(self.keys[1:], self.widths[1:]):
            joint = joint * width + key  # < (2n)^2 for a pair: no overflow below 10^9 rows
        self.joint, self.sizes = np.unique(joint, return_counts=True)
        # Each score vector's cell of every joint cell, to fold joint counts back onto it.
        self.of_joint, rest = [], self.joint
        for width in reversed(self.widths[1:]):
            self.of_joint.insert(0, rest % width)
            rest = rest // width
        self.of_joint.insert(0, rest)

    def fold(self, joint_counts: np.ndarray) -> list[np.ndarray]:
        """(R, joint cells) counts -> per score vector (R, its cells)."""
        out = []
        for cols, width in zip(self.of_joint, self.widths):
            folded = np.zeros((joint_counts.shape[0], width), np.int64)
            if len(self.widths) == 1:
                folded[:, cols] = joint_counts
            else:
                order = np.argsort(cols, kind="stable")
                sorted_cols = cols[order]
                starts = np.flatnonzero(np.r_[True, sorted_cols[1:] != sorted_cols[:-1]])
                folded[:, sorted_cols[starts]] = np.add.reduceat(joint_counts[:, order], starts, axis=1)
            out.append(folded)
        return out


def _merge_negative_runs(desc: np.ndarray, g: np.ndarray, y: np.ndarray,
                         threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge runs of groups without positives; a merged group keeps its first (highest) score."""
    G = len(desc)
    has_pos = np.bincount(g[y == 1], minlength=G) > 0
    start = np.ones(G, bool)
    start[1:] = has_pos[1:] | has_pos[:-1]
    cut = int(np.searchsorted(-desc, -threshold, side="right"))
    if cut < G:
        start[cut] = True
    return desc[start], (np.cumsum(start) - 1)[g]


def bootstrap_binary(y, p, resamples: int = 1000, seed: int = 0, clusters=None,
                     metrics: Sequence[str] = DEFAULT_METRICS, p_other=None, threshold: float = 0.5,
                     threads: int | None = None, method: str = "auto"):
    """Binary metrics over bootstrap resamples: {metric: array of `resamples` values}.

    Any of `metrics.BINARY`. With `p_other` (a second score vector for the same rows and
    labels), returns two such dicts, (for p, for p_other), computed on the very same resamples,
    so `b[m] - a[m]` is the paired bootstrap of the difference. `method` "rows" or "cells"
    forces one way of drawing (see the module docstring; "auto" picks the cheaper; with
    clusters it is always rows). `threads`: default min(2, cores)."""
    if method not in ("auto", "rows", "cells"):
        raise UsageError(f"method must be auto, rows or cells, not {method!r}")
    what = "bootstrap"
    y = check_binary_labels(y, what).astype(np.int64)
    score_sets = [check_scores(p, len(y), what)]
    if p_other is not None:
        score_sets.append(check_scores(p_other, len(y), what, "score (second)"))
    metrics = tuple(metrics)
    if len(y) == 0:
        empty = {m: np.full(resamples, np.nan) for m in metrics}
        return empty if p_other is None else (empty, dict(empty))
    cells = _BinaryCells(y, score_sets, merge=not {"brier", "ece"} & set(metrics), threshold=threshold)
    units = _Units(len(y), clusters)
    if clusters is not None and method == "cells":
        raise UsageError("cluster resampling draws rows, not cells: use method 'rows' or 'auto'")
    use_cells = method == "cells" or (method == "auto" and clusters is None
                                      and len(cells.sizes) * _CELLS_RATIO <= len(y))
    per_block = max(1, min(resamples, _BLOCK_CELLS // max(cells.widths)))
    streams = _streams(seed, resamples)
    results = [{m: np.empty(resamples) for m in metrics} for _ in score_sets]

    def run(start: int) -> None:
        block = streams[start:start + per_block]
        if use_cells:
            folded = cells.fold(_cell_counts(block, cells.sizes, len(y)))
        else:
            folded = _row_cell_counts(block, units, cells)
        for counts, groups, result in zip(folded, cells.groups, results):
            values = binary_from_groups(groups, counts[:, 1::2], counts[:, 0::2], threshold, metrics)
            for m in metrics:
                result[m][start:start + len(block)] = values[m]

    starts = range(0, resamples, per_block)
    threads = min(2, os.cpu_count() or 1) if threads is None else threads
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    return results[0] if p_other is None else (results[0], results[1])


def _cell_counts(streams, sizes: np.ndarray, n: int) -> np.ndarray:
    pvals = sizes / n
    return np.stack([np.random.default_rng(s).multinomial(n, pvals) for s in streams])


def _row_cell_counts(streams, units: _Units, cells: _BinaryCells) -> list[np.ndarray]:
    out = [np.empty((len(streams), w), np.int64) for w in cells.widths]
    for i, stream in enumerate(streams):
        drawn = units.draw(stream)
        if units.of_row is None:
            for key, width, dest in zip(cells.keys, cells.widths, out):
                dest[i] = np.bincount(np.take(key, drawn), minlength=width)
        else:
            row_counts = np.bincount(drawn, minlength=units.m)[units.of_row]
            for key, width, dest in zip(cells.keys, cells.widths, out):
                dest[i] = np.bincount(key, weights=row_counts, minlength=width)
    return out


def interval(samples, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap samples, NaN resamples left out ((nan, nan) if all)."""
    if not 0 < confidence < 1:
        raise UsageError(f"confidence must be between 0 and 1, not {confidence}")
    s = np.asarray(samples, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(s, [tail, 100 - tail])
    return float(low), float(high)
