"""The MIMIC-III benchmark's hand-crafted features (methods.md 5.2 and 5.4-5.5): the baseline that
Gupta et al.'s pretrained GRU features are compared with.

Per stay and variable, 6 statistics (min, max, mean, std, skew, count) of the variable's
**observed** hourly values (mask == 1) in 7 windows of the stay: the whole stay and its first
10%, 25%, 50% and last 10%, 25%, 50%. With the 17 benchmark variables, 17 x 7 x 6 = 714
features, ordered variable, then window, then statistic (as the benchmark's
`feature_extractor.py`), named `VARIABLE:WINDOW:STAT`.

Definitions (where the benchmark's code differs, this module says how):

- Values are taken as the records hold them: after `timeline series` normalisation the
  statistics of continuous variables are in standardised units. A probe standardises every
  feature, so a change of units (x -> a x + b) changes nothing it learns.
- Bin t of `values` and `mask` is hour t (the `hours` field is not read: `timeline series`
  and `synth series` bin by the hour).
- Windows cut the stay's `length` hours (the record's `length` field; T without one), not the
  span from a variable's first to its last observation as the benchmark does: every variable
  then shares one clock, and a late first measurement is informative. Hour bin t covers
  [t, t + 1) and belongs to a window when its midpoint t + 0.5 lies inside it, so the first and
  last 10% of 48 hours are 5 bins each. Bins at or after `length` are in no window.
- std is the population standard deviation and skew the biased Fisher skewness (scipy's
  default), both 0 for a window whose values are all equal (scipy gives NaN skew there).
- An empty window gives NaN for min, max, mean, std and skew, and 0 for count. `ehrkit probe`
  fills NaN with training-row column means before standardising (the benchmark's mean
  imputation).
- A categorical variable's value at an hour is the number in its active one-hot column's name
  (`Glascow coma scale total->15` is 15) when every category of the variable is a number, else
  the category's index. Without one-hot columns (`ehrkit synth series`, `--no-one-hot`) the
  value column is used as it is.

Which value column belongs to which mask column (variable), in this order of preference: the
column names in schema metadata `ehrkit.series` (JSON {"columns": [...]}, one-hot columns named
`NAME->CATEGORY`); one value column per mask column (names: the 17 benchmark variables when
there are 17, else `variable_<k>`); the layout of `timeline series` with its default 17
benchmark variables (`columns()`: 43 value columns). Anything else is a DataError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrkit.errors import DataError, MissingFieldError

STATS = ("min", "max", "mean", "std", "skew", "count")
# (name, start, end) as shares of the stay's length
WINDOWS = (("full", 0.0, 1.0), ("first10", 0.0, 0.1), ("first25", 0.0, 0.25),
           ("first50", 0.0, 0.5), ("last10", 0.9, 1.0), ("last25", 0.75, 1.0),
           ("last50", 0.5, 1.0))
MODEL_INPUTS = ("values", "mask", "hours")
METADATA_KEY = "ehrkit.series"
CHUNK_STAYS = 2048  # stays per numpy pass: bounds memory (2048 x 48 x 43 float64 = 34 MB)


@dataclass
class Layout:
    """Variable names, and for each variable its value columns and the number each stands for
    (None: a plain numeric column)."""

    names: list[str]
    columns: list[list[int]]
    codes: list[np.ndarray | None]


def layout_from_names(names: list[str]) -> Layout:
    """Group value columns named `NAME` or `NAME->CATEGORY` into variables, in order.

    >>> layout_from_names(["A->0", "A->1", "B", "C->x", "C->y"]).columns
    [[0, 1], [2], [3, 4]]
    """
    variables: dict[str, list[int]] = {}
    categories: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        base, sep, category = name.partition("->")
        variables.setdefault(base, []).append(i)
        if sep:
            categories.setdefault(base, []).append(category)
    codes = []
    for base in variables:
        labels = categories.get(base)
        codes.append(None if labels is None else _category_numbers(labels))
    return Layout(list(variables), list(variables.values()), codes)


def _category_numbers(labels: list[str]) -> np.ndarray:
    try:
        return np.array([float(c) for c in labels])
    except ValueError:
        return np.arange(len(labels), dtype=np.float64)


def layout(schema: pa.Schema, width: int, variables: int, source: str = "input") -> Layout:
    """How the `values` columns map to the `mask` columns (see the module docstring)."""
    found = _from_metadata(schema, source)
    if found:
        if sum(map(len, found.columns)) == width and len(found.names) == variables:
            return found
        raise DataError(f"{source}: schema metadata '{METADATA_KEY}' names "
                        f"{sum(map(len, found.columns))} columns of {len(found.names)} "
                        f"variables; the records have {width} value and {variables} mask columns")
    if width == variables:
        from ehrkit.synth.series import VARIABLES

        names = VARIABLES if width == len(VARIABLES) else [f"variable_{k}" for k in range(width)]
        return Layout(list(names), [[k] for k in range(width)], [None] * width)
    from ehrkit.timeline.series import columns

    benchmark = columns()
    if width == len(benchmark) and variables == len(layout_from_names(benchmark).names):
        return layout_from_names(benchmark)
    raise DataError(f"{source}: cannot tell which of the {width} value columns belong to which "
                    f"of the {variables} variables (mask columns)",
                    hint=f"write the column names as schema metadata '{METADATA_KEY}' "
                    '({"columns": [...]}), or use timeline series with its default variables')


def _from_metadata(schema: pa.Schema, source: str) -> Layout | None:
    raw = (schema.metadata or {}).get(METADATA_KEY.encode())
    if not raw:
        return None
    try:
        return layout_from_names(list(json.loads(raw)["columns"]))
    except (ValueError, KeyError, TypeError):
        raise DataError(f"{source}: schema metadata '{METADATA_KEY}' is not JSON with a "
                        "'columns' list") from None


def _dense(column: pa.ChunkedArray, name: str, source: str) -> np.ndarray:
    """stays x T x W float64 from list<list<number>>: NaN for nulls and for the hours of stays
    shorter than the longest."""
    outer = column.combine_chunks()
    if outer.null_count:
        raise DataError(f"{source}: field '{name}' is null in {outer.null_count} rows")
    hours = np.asarray(pc.list_value_length(outer).to_numpy(zero_copy_only=False), np.int64)
    inner = pc.list_flatten(outer)
    widths = pc.list_value_length(inner).to_numpy(zero_copy_only=False) if len(inner) else []
    width = int(np.max(widths)) if len(widths) else 0
    if len(widths) and (np.min(widths) != width or inner.null_count):
        raise DataError(f"{source}: field '{name}' has hours of different widths",
                        hint="every hour needs one item per column")
    flat = np.asarray(pc.list_flatten(inner).cast(pa.float64()).to_numpy(zero_copy_only=False))
    steps = int(hours.max()) if len(hours) else 0
    out = np.full((len(hours), steps, width), np.nan)
    stay = np.repeat(np.arange(len(hours)), hours)
    hour = np.arange(len(stay)) - np.repeat(np.cumsum(hours) - hours, hours)
    out[stay, hour] = flat.reshape(len(stay), width)
    return out


def variable_values(values: np.ndarray, plan: Layout) -> np.ndarray:
    """stays x T x V: each variable's number per hour (NaN where no category is active)."""
    out = np.full(values.shape[:2] + (len(plan.names),), np.nan)
    for v, (cols, codes) in enumerate(zip(plan.columns, plan.codes)):
        if codes is None:
            out[:, :, v] = values[:, :, cols[0]]
            continue
        block = np.nan_to_num(values[:, :, cols], nan=0.0)
        active = block.argmax(axis=2)
        out[:, :, v] = np.where(block.max(axis=2) > 0.5, codes[active], np.nan)
    return out


def statistics(x: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """stays x V x 6 (STATS) over the hours axis of x (stays x T x V) where `observed`."""
    count = observed.sum(axis=1)
    some = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(observed, x, 0.0).sum(axis=1)
        mean = np.where(some, total / np.maximum(count, 1), np.nan)
        dev = np.where(observed, x - mean[:, None, :], 0.0)
        m2 = (dev ** 2).sum(axis=1) / np.maximum(count, 1)
        m3 = (dev ** 3).sum(axis=1) / np.maximum(count, 1)
        low = np.where(observed, x, np.inf).min(axis=1, initial=np.inf)
        high = np.where(observed, x, -np.inf).max(axis=1, initial=-np.inf)
        flat = low == high  # all equal: no spread, no asymmetry (exactly, not up to rounding)
        std = np.where(flat, 0.0, np.sqrt(m2))
        skew = np.where(flat, 0.0, m3 / np.where(flat, 1.0, m2) ** 1.5)
    nan = ~some
    stats = [np.where(nan, np.nan, s) for s in (low, high, mean, std, skew)]
    return np.stack(stats + [count.astype(np.float64)], axis=2)


def feature_names(variables: list[str]) -> list[str]:
    return [f"{v}:{w}:{s}" for v in variables for w, _, _ in WINDOWS for s in STATS]


def features(values: np.ndarray, mask: np.ndarray, length: np.ndarray,
             plan: Layout) -> np.ndarray:
    """stays x (V * 7 * 6) float32, ordered variable, window, statistic."""
    x = variable_values(values, plan)
    steps = x.shape[1]
    observed = (mask[:, :steps] == 1) & ~np.isnan(x)
    middle = np.arange(steps) + 0.5
    length = np.clip(length, 0, steps).astype(np.float64)[:, None]
    windows = []
    for _, start, end in WINDOWS:
        inside = (middle >= start * length) & (middle <= end * length)  # stays x T
        windows.append(statistics(x, observed & inside[:, :, None]))
    # stays x W x V x S -> stays x V x W x S
    width = len(plan.names) * len(WINDOWS) * len(STATS)
    return np.stack(windows, axis=1).transpose(0, 2, 1, 3).reshape(len(x), width).astype(np.float32)


def _chunk(batch: pa.RecordBatch, plan: Layout | None, source: str) -> tuple[np.ndarray, Layout]:
    table = pa.Table.from_batches([batch])
    values = _dense(table["values"], "values", source)
    mask = _dense(table["mask"], "mask", source)
    if values.shape[:2] != mask.shape[:2]:
        raise DataError(f"{source}: fields 'values' and 'mask' cover different hours")
    if plan is None and values.shape[0] == 0:  # no widths to read: metadata, or the benchmark's
        found = _from_metadata(batch.schema, source)
        plan = found or layout(batch.schema, 17, 17, source)
        values, mask = np.zeros((0, 1, sum(map(len, plan.columns)))), np.zeros((0, 1, len(plan.names)))
    plan = plan or layout(batch.schema, values.shape[2], mask.shape[2], source)
    length = np.full(len(values), values.shape[1], np.int64)
    if "length" in batch.schema.names:
        given = batch.column("length").to_numpy(zero_copy_only=False)
        length = np.where(np.isnan(np.asarray(given, np.float64)), length, given).astype(np.int64)
    return features(values, np.nan_to_num(mask), length, plan), plan


def handcrafted(batch: pa.RecordBatch, source: str = "input") -> pa.RecordBatch:
    """Embedding records of hand-crafted features from series records: every field but
    values, mask and hours passes through, plus `embedding` fixed_size_list<float32>[V * 42],
    with schema metadata `ehrkit.embedding` {"model": "handcrafted", ..., "features": names}."""
    for name in ("values", "mask"):
        if name not in batch.schema.names:
            raise MissingFieldError(source, name, batch.schema.names)
    parts, plan = [], None
    for start in range(0, max(batch.num_rows, 1), CHUNK_STAYS):
        matrix, plan = _chunk(batch.slice(start, CHUNK_STAYS), plan, source)
        parts.append(matrix)
    names = feature_names(plan.names)
    matrix = np.concatenate(parts) if parts else np.zeros((0, len(names)), np.float32)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel(), pa.float32()), len(names))
    keep = [i for i, f in enumerate(batch.schema) if f.name not in MODEL_INPUTS and f.name != "embedding"]
    fields = [batch.schema.field(i) for i in keep] + [pa.field("embedding", embedding.type)]
    meta = dict(batch.schema.metadata or {})
    meta.pop(METADATA_KEY.encode(), None)
    meta[b"ehrkit.embedding"] = json.dumps({"model": "handcrafted", "pool": None, "layer": None,
                                            "dim": len(names), "features": names}).encode()
    return pa.RecordBatch.from_arrays([batch.column(i) for i in keep] + [embedding],
                                      schema=pa.schema(fields, metadata=meta))
