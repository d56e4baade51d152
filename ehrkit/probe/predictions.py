"""Prediction records of a probe (the `prediction` record kind).

Every input field but the features passes through, then:

- binary: `label` int64 0/1 and `score` float64, P(positive class)
- multiclass: `label` int64 class index and `score` list<float64> of the K class probabilities;
  class names in schema metadata `ehrkit.classes`
- multilabel: `label` list<int8> (null = unknown) and `score` list<float64>, one per label;
  names in `ehrkit.label_names`
- regression: `label` float64 and `score` float64, the predicted value
- `split` (train, tuning, held_out) when known, and with --outliers `outlier_score` float64
  (higher is more anomalous) and `outlier` bool

`label` is null where the record's label is null (evaluate leaves such rows out); without the
label fields (a saved probe applied to unlabelled records) there is no `label`.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from ehrkit.probe.data import SPLITS

OUTPUT_FIELDS = ("label", "score", "split", "outlier_score", "outlier")


def _nullable(values: np.ndarray, kind: pa.DataType) -> pa.Array:
    missing = np.isnan(values)
    return pa.array(np.where(missing, 0, values).astype(kind.to_pandas_dtype()), type=kind,
                    mask=missing)


def _lists(matrix: np.ndarray, kind: pa.DataType, nulls: bool = False) -> pa.Array:
    n, width = matrix.shape
    flat = _nullable(matrix.ravel(), kind) if nulls else pa.array(matrix.ravel().astype(
        kind.to_pandas_dtype()), type=kind)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * width + 1, width, dtype=np.int32)),
                                    flat)


def label_and_score(task: str, truths: list[np.ndarray] | None,
                    scores: list[np.ndarray]) -> tuple[pa.Array | None, pa.Array]:
    if task == "multilabel":
        label = None if truths is None else _lists(np.stack(truths, axis=1), pa.int8(), nulls=True)
        return label, _lists(np.stack(scores, axis=1), pa.float64())
    truth = None if truths is None else truths[0]
    if task == "multiclass":
        label = None if truth is None else _nullable(truth, pa.int64())
        return label, _lists(scores[0], pa.float64())
    kind = pa.float64() if task == "regression" else pa.int64()
    label = None if truth is None else _nullable(truth, kind)
    return label, pa.array(scores[0], pa.float64())


def prediction_table(table: pa.Table, feature_field: str, probe, truths, scores,
                     codes: np.ndarray | None, outlier: np.ndarray | None) -> pa.Table:
    """The rows of `table` (already selected) with the probe's labels, scores and extras."""
    drop = {feature_field, *OUTPUT_FIELDS}
    keep = [name for name in table.column_names if name not in drop]
    columns = {name: table[name] for name in keep}
    label, score = label_and_score(probe.task, truths, scores)
    if label is not None:
        columns["label"] = label
    columns["score"] = score
    if codes is not None:
        names = np.array([*SPLITS, None], dtype=object)  # index -1 (outside) -> None
        columns["split"] = pa.array(names[codes], pa.string())
    if outlier is not None:
        columns["outlier_score"] = pa.array(outlier, pa.float64())
        columns["outlier"] = pa.array(outlier > 0.5, pa.bool_())
    return pa.table(columns).replace_schema_metadata(_metadata(probe))


def _metadata(probe) -> dict[str, str]:
    targets = [m.target for m in probe.labels]
    meta = {"task": probe.task, "made_by": "ehrkit probe", "labels": [t["name"] for t in targets]}
    if probe.task == "binary":
        meta["positive"] = targets[0]["positive"]
    out = {"ehrkit.prediction": json.dumps(meta)}
    if probe.task == "multiclass":
        out["ehrkit.classes"] = json.dumps(targets[0]["classes"])
    if probe.task == "multilabel":
        out["ehrkit.label_names"] = json.dumps([t["name"] for t in targets])
    return out
