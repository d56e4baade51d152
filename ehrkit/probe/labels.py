"""Labels for `ehrkit probe`: which fields, which task, and their values as numbers.

A label spec is a field (`mortality`), a whole list field (`phenotypes`: one label per
position) or part of one (`phenotypes[:20]`, `phenotypes[20:]`, `phenotypes[3]`). One scalar
field, or one item `FIELD[i]`, is one task; several fields, a list field or a slice of one are
a multi-label task (one probe per label, each binary).

Task inference (`--task auto`) for one scalar label, over its non-null values: two distinct
values -> binary; numbers with more than `REGRESSION_MIN_VALUES` distinct values -> regression;
otherwise (strings, booleans, a few numbers) -> multiclass. Classes are sorted; for binary the
second (the larger) is the positive class unless `--positive` names it: 0/1 -> 1,
false/true -> true, "no"/"yes" -> "yes".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrkit.errors import DataError, UsageError
from ehrkit.labels import is_list, item, label_columns, list_width, parse_spec

TASKS = ("binary", "multiclass", "multilabel", "regression")
REGRESSION_MIN_VALUES = 20


@dataclass
class Target:
    """One label as numbers: `y` is float64 with NaN where unknown (binary 0/1, multiclass the
    class index, regression the value); `classes` are the original values (None: regression)."""

    name: str
    field: str
    index: int | None  # position in a list field
    task: str  # binary | multiclass | regression (one label of a multilabel task is binary)
    y: np.ndarray
    classes: list | None = None
    positive: object = None

    def to_json(self) -> dict:
        return {"name": self.name, "field": self.field, "index": self.index, "task": self.task,
                "classes": self.classes, "positive": self.positive}


@dataclass
class Labels:
    task: str  # binary | multiclass | multilabel | regression
    targets: list[Target] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]


def _clean(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array, NaN made null, dictionary decoded."""
    array = column.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_floating(array.type):
        array = pc.if_else(pc.is_nan(array), pa.nulls(len(array), array.type), array)
    return array


def distinct(array: pa.Array) -> list:
    return sorted(pc.unique(array.drop_null()).to_pylist())


def infer_task(array: pa.Array, values: list) -> str:
    if len(values) <= 2:
        return "binary"
    numeric = pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
    return "regression" if numeric and len(values) > REGRESSION_MIN_VALUES else "multiclass"


def encode(array: pa.Array, classes: list) -> np.ndarray:
    """Class index per row as float64, NaN where null or not one of `classes`."""
    try:
        value_set = pa.array(classes).cast(array.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return np.full(len(array), np.nan)
    index = pc.index_in(array, value_set=value_set)
    return np.asarray(index.to_numpy(zero_copy_only=False), dtype=np.float64)


def _positive(values: list, positive: str | None, name: str) -> object:
    if positive is None:
        return values[-1]
    for v in values:
        if str(v).lower() == positive.lower() or (isinstance(v, (int, float)) and _same(v, positive)):
            return v
    raise UsageError(f"--positive: not one of the {len(values)} values of label '{name}'",
                     hint="name one of the label's two values")


def _same(value: float, text: str) -> bool:
    try:
        return float(text) == float(value)
    except ValueError:
        return False


def build(table: pa.Table, specs: list[str], task: str = "auto", positive: str | None = None,
          source: str = "input") -> Labels:
    """Fit-time labels: infer the task, fix the classes and the positive class."""
    if not specs:
        raise UsageError("probe needs --label-field NAME (the label to predict)")
    columns = label_columns(table, specs, source)
    if not columns:
        raise UsageError(f"--label-field {', '.join(specs)} selects no labels")
    multi = len(columns) > 1 or _multi(table, specs[0])
    if task == "auto":
        task = "multilabel" if multi else "auto"
    elif multi and task != "multilabel":
        raise UsageError(f"--task {task} takes one scalar label field; several labels are "
                         "a multilabel task")
    targets = []
    for name, fname, index, column in columns:
        array = _clean(column)
        values = distinct(array)
        kind = infer_task(array, values) if task == "auto" else \
            "binary" if task == "multilabel" else task
        targets.append(_target(name, fname, index, array, values, kind, positive, task))
    return Labels(task if task != "auto" else targets[0].task, targets)


def _multi(table: pa.Table, spec: str) -> bool:
    """A list field or a slice of one is multilabel, even with one item; FIELD[i] is one label."""
    name, part = parse_spec(spec)
    return isinstance(part, slice) or (part is None and is_list(table.schema.field(name).type))


def _target(name, fname, index, array, values, kind, positive, task) -> Target:
    if kind == "regression":
        if not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
            raise DataError(f"label '{name}' is not numeric: regression needs numbers",
                            hint="use --task multiclass")
        y = np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        return Target(name, fname, index, kind, y)
    if kind == "binary" and len(values) != 2:
        what = "multilabel" if task == "multilabel" else "binary"
        raise DataError(f"label '{name}' has {len(values)} distinct values; a {what} label "
                        "needs two", hint="check the label field, or use --task multiclass")
    if kind == "multiclass" and len(values) < 2:
        raise DataError(f"label '{name}' has {len(values)} distinct values; nothing to learn")
    y = encode(array, values)
    if kind == "binary":
        pos = _positive(values, positive, name)
        y = np.where(np.isnan(y), np.nan, (y == values.index(pos)).astype(np.float64))
        return Target(name, fname, index, kind, y, values, pos)
    return Target(name, fname, index, kind, y, values)


def reapply(table: pa.Table, saved: list[dict], source: str) -> list[np.ndarray] | None:
    """Encode the labels of new records with a saved probe's classes; None when they are absent."""
    fields = {s["field"] for s in saved}
    if any(f not in table.column_names for f in fields):
        return None
    out = []
    for s in saved:
        column = table[s["field"]]
        if s["index"] is not None:
            column = item(column, s["index"], list_width(column, s["field"], source))
        array = _clean(column)
        if s["task"] == "regression":
            out.append(np.asarray(array.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64))
            continue
        y = encode(array, s["classes"])
        if s["task"] == "binary":
            pos = s["classes"].index(s["positive"])
            y = np.where(np.isnan(y), np.nan, (y == pos).astype(np.float64))
        out.append(y)
    return out
