"""Prediction records as arrays: read them, infer the task, aggregate chunks, align two files.

The task follows from the field types (conventions of the `prediction` record kind):

| label                | score / prediction        | task        |
|----------------------|---------------------------|-------------|
| list of strings      | `prediction` list of str  | sequence    |
| list of numbers      | `score` list, same length | multilabel  |
| integer class index  | `score` list of K probs   | multiclass  |
| 0/1 (or bool)        | `score` in [0, 1]         | binary      |
| any other number     | `score` number            | regression  |

Rows without a label are left out (and counted); a missing score is an error naming the row,
never its content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrkit import log
from ehrkit.errors import DataError, MissingFieldError, UsageError
from ehrkit.labels import is_list

TASKS = ("binary", "multiclass", "multilabel", "regression", "sequence")


@dataclass(frozen=True)
class Fields:
    label: str = "label"
    score: str = "score"
    prediction: str = "prediction"


@dataclass
class Predictions:
    """One prediction file as aligned arrays; `table` keeps the other fields (ids, --by)."""

    kind: str
    label: np.ndarray  # [n] or [n, L]; object array of tag lists for sequence
    score: np.ndarray  # [n], [n, K] or [n, L]; object array of tag lists for sequence
    table: pa.Table
    names: list[str] = field(default_factory=list)  # multilabel label names, multiclass classes
    source: str = "input"
    title: str | None = None  # what was predicted, from the maker's metadata (probe: the label)

    def __len__(self) -> int:
        return len(self.label)

    def take(self, rows: np.ndarray) -> "Predictions":
        return replace(self, label=self.label[rows], score=self.score[rows],
                       table=self.table.take(pa.array(rows)))

    def column(self, name: str) -> np.ndarray:
        if name not in self.table.column_names:
            raise MissingFieldError(self.source, name, self.table.column_names)
        return np.asarray(self.table[name].to_pylist(), dtype=object)


def from_table(table: pa.Table, fields: Fields, task: str = "auto", source: str = "input") -> Predictions:
    """Arrays of a prediction table; `task` 'auto' infers it from the field types."""
    if fields.label not in table.column_names:
        raise MissingFieldError(source, fields.label, table.column_names, "--label-field")
    kind = infer_task(table, fields, source) if task == "auto" else task
    if kind not in TASKS:
        raise UsageError(f"unknown task '{kind}'; use one of auto, {', '.join(TASKS)}")
    value_field = fields.prediction if kind == "sequence" else fields.score
    if value_field not in table.column_names:
        option = "--prediction-field" if kind == "sequence" else "--score-field"
        raise MissingFieldError(source, value_field, table.column_names, option)
    known = pc.invert(pc.is_null(table[fields.label])) if len(table) else pa.array([], pa.bool_())
    dropped = len(table) - pc.sum(known).as_py() if len(table) else 0
    if dropped:
        log.info(f"{source}: {dropped} rows without a {fields.label} left out")
        table = table.filter(known)
    _no_null(table, value_field, source)
    label, score = _arrays(table, kind, fields, value_field, source)
    names = _names(table.schema, kind, label, score)
    return Predictions(kind, label, score, table, names, source, _title(table.schema))


def infer_task(table: pa.Table, fields: Fields, source: str) -> str:
    label_type = table.schema.field(fields.label).type
    if is_list(label_type):
        if pa.types.is_string(label_type.value_type) or pa.types.is_large_string(label_type.value_type):
            return "sequence"
        return "multilabel"
    if fields.score not in table.column_names:
        raise MissingFieldError(source, fields.score, table.column_names, "--score-field")
    if is_list(table.schema.field(fields.score).type):
        return "multiclass"
    labels = pc.unique(table[fields.label].cast(pa.float64())).to_numpy(zero_copy_only=False)
    labels = labels[~np.isnan(labels)]
    scores = table[fields.score].cast(pa.float64())
    lo, hi = pc.min(scores).as_py(), pc.max(scores).as_py()
    binary_labels = set(labels.tolist()) <= {0.0, 1.0}
    if binary_labels and (lo is None or (lo >= 0 and hi <= 1)):
        return "binary"
    return "regression"


def _no_null(table: pa.Table, name: str, source: str) -> None:
    nulls = pc.is_null(table[name])
    if pc.any(nulls).as_py():
        row = int(np.flatnonzero(nulls.to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{source}: row {row + 1}: field '{name}' is null",
                        hint="every labelled row needs a score")


def _matrix(column, source: str, name: str) -> np.ndarray:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    width = int(lengths[0]) if len(lengths) else 0
    if len(lengths) and (lengths != width).any():
        row = int(np.flatnonzero(lengths != width)[0])
        raise DataError(f"{source}: row {row + 1}: field '{name}' has {int(lengths[row])} values, "
                        f"row 1 has {width}")
    flat = pc.list_flatten(column).cast(pa.float64()).fill_null(np.nan)
    return flat.to_numpy(zero_copy_only=False).reshape(len(lengths), width)


def _arrays(table: pa.Table, kind: str, fields: Fields, value_field: str, source: str):
    if kind == "sequence":
        gold = np.empty(len(table), dtype=object)
        pred = np.empty(len(table), dtype=object)
        gold[:] = table[fields.label].to_pylist()
        pred[:] = table[value_field].to_pylist()
        bad = [i for i in range(len(table)) if len(gold[i]) != len(pred[i])]
        if bad:
            raise DataError(f"{source}: row {bad[0] + 1}: '{fields.label}' and '{value_field}' "
                            "have different numbers of tags")
        return gold, pred
    if kind == "multilabel":
        label = _matrix(table[fields.label], source, fields.label)
        score = _matrix(table[value_field], source, value_field)
        if label.shape != score.shape:
            raise DataError(f"{source}: '{fields.label}' has {label.shape[1]} labels per row, "
                            f"'{value_field}' {score.shape[1]}")
        return label, score
    label = table[fields.label].cast(pa.float64()).to_numpy(zero_copy_only=False)
    if kind == "multiclass":
        score = _matrix(table[value_field], source, value_field)
        bad = (label != np.round(label)) | (label < 0) | (label >= score.shape[1])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: row {row + 1}: '{fields.label}' must be a class index "
                            f"0..{score.shape[1] - 1} into '{value_field}'")
        return label.astype(np.int64), score
    return label, table[value_field].cast(pa.float64()).to_numpy(zero_copy_only=False)


def _names(schema: pa.Schema, kind: str, label: np.ndarray, score: np.ndarray) -> list[str]:
    meta = schema.metadata or {}
    key = {"multilabel": b"ehrkit.label_names", "multiclass": b"ehrkit.classes"}.get(kind)
    if key and key in meta:
        try:
            names = [str(n) for n in json.loads(meta[key])]
            if len(names) == score.shape[1]:
                return names
        except (ValueError, TypeError):
            pass
    if kind in ("multilabel", "multiclass"):
        return [str(i) for i in range(score.shape[1])]
    return []


def _title(schema: pa.Schema) -> str | None:
    try:
        labels = json.loads((schema.metadata or {})[b"ehrkit.prediction"])["labels"]
    except (KeyError, ValueError, TypeError):
        return None
    return ",".join(str(name) for name in labels) if labels else None


def aggregate(preds: Predictions, by: list[str], how: str, scale: float = 2.0) -> Predictions:
    """Chunk predictions to one per group (ClinicalBERT: per admission); binary tasks only.
    The other fields keep each group's first value (ids, patient, subgroup fields)."""
    from ehrkit.eval import aggregate as agg

    if preds.kind != "binary":
        raise UsageError(f"--aggregate works on binary predictions (these are {preds.kind})")
    for name in by:
        if name not in preds.table.column_names:
            raise MissingFieldError(preds.source, name, preds.table.column_names, "--group-by")
    keys = _group_keys(preds.table, by)
    if how == "clinicalbert":
        groups, score, label = agg.clinicalbert(keys, preds.score, preds.label, c=scale)
    else:
        groups, score, label = getattr(agg, how)(keys, preds.score, preds.label)
    unique, first = np.unique(keys, return_index=True)
    first_row = dict(zip(unique.tolist(), first.tolist()))
    rows = np.array([first_row[g] for g in np.asarray(groups).tolist()], dtype=np.int64)
    table = preds.table.take(pa.array(rows))
    return replace(preds, label=np.asarray(label, dtype=np.float64),
                   score=np.asarray(score, dtype=np.float64), table=table)


def _group_keys(table: pa.Table, by: list[str]) -> np.ndarray:
    """One comparable key per row (strings; several fields joined with a separator)."""
    parts = [np.asarray(table[name].cast(pa.string()).fill_null("\0null").to_pylist(), dtype=object)
             for name in by]
    keys = parts[0]
    for part in parts[1:]:
        keys = keys + "\x1f" + part
    return keys.astype(str)


def align(a: Predictions, b: Predictions, on: list[str]) -> tuple[Predictions, Predictions]:
    """The rows of two prediction files matched for a paired comparison: by the `on` fields,
    or by position when none are given (then both must have the same rows and labels)."""
    if a.kind != b.kind:
        raise DataError(f"{b.source}: {b.kind} predictions cannot be compared with {a.kind} ones")
    if on:
        for p in (a, b):
            for name in on:
                if name not in p.table.column_names:
                    raise MissingFieldError(p.source, name, p.table.column_names, "--on")
        ka, kb = _group_keys(a.table, on), _group_keys(b.table, on)
        for p, keys in ((a, ka), (b, kb)):
            if len(np.unique(keys)) != len(keys):
                raise DataError(f"{p.source}: the --on fields do not identify rows uniquely")
        common, ia, ib = np.intersect1d(ka, kb, assume_unique=True, return_indices=True)
        missing = len(ka) + len(kb) - 2 * len(common)
        if missing:
            log.warn(f"compare: {missing} rows are in only one of the two files; left out")
        a, b = a.take(ia), b.take(ib)
    elif len(a) != len(b):
        raise DataError(f"{b.source}: {len(b)} rows against {len(a)}; match rows with --on ID_FIELD")
    if a.kind != "sequence" and not np.array_equal(a.label, b.label, equal_nan=True):
        raise DataError(f"{b.source}: the labels differ from {a.source}'s on the matched rows",
                        hint="a paired comparison needs the same rows in both files (see --on)")
    return a, b
