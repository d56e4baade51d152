"""Prediction records from fine-tuned outputs (the `prediction` record kind; the same fields a
probe writes, so `ehrkit evaluate` reads both): every input field but the model inputs, then
`label` (when the records carry the label) and `score`; for ner `prediction`, the predicted
tag of every word, beside `label`, the gold tags."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from ehrkit.embed.models import INPUT_FIELDS
from ehrkit.finetune.spec import Spec
from ehrkit.probe.predictions import label_and_score

OUTPUT_FIELDS = ("label", "score", "prediction")
METADATA_KEY = "ehrkit.prediction"


def dropped(spec: Spec) -> set[str]:
    """Input fields that do not pass through (model inputs and fields the output replaces)."""
    drop = set(INPUT_FIELDS) | {spec.text_field, spec.input_field} | set(OUTPUT_FIELDS)
    if spec.task == "ner":
        drop |= {spec.tags_field, "spans"}
    return drop


def metadata(spec: Spec, made_by: str) -> dict[str, str]:
    meta = {"task": "sequence" if spec.task == "ner" else spec.task, "made_by": made_by,
            "labels": spec.label_names or [spec.tags_field]}
    if spec.task == "binary":
        meta["positive"] = spec.targets[0]["positive"]
    out = {METADATA_KEY: json.dumps(meta, default=str)}
    if spec.task == "multiclass":
        out["ehrkit.classes"] = json.dumps(spec.targets[0]["classes"], default=str)
    if spec.task == "multilabel":
        out["ehrkit.label_names"] = json.dumps(spec.label_names)
    return out


def output_columns(spec: Spec, truths: list[np.ndarray] | None, scores: np.ndarray) -> dict:
    """`label` (if known) and `score` for row tasks, from to_scores' output."""
    if spec.task == "multilabel":
        parts = [scores[:, i] for i in range(scores.shape[1])]
    else:
        parts = [scores]
    label, score = label_and_score(spec.task, truths, parts)
    return ({"label": label} if label is not None else {}) | {"score": score}


def tag_columns(gold: list | None, predicted: list) -> dict:
    columns = {}
    if gold is not None:
        columns["label"] = pa.array(gold, pa.list_(pa.string()))
    columns["prediction"] = pa.array(predicted, pa.list_(pa.string()))
    return columns


def prediction_table(table: pa.Table, spec: Spec, columns: dict, made_by: str) -> pa.Table:
    drop = dropped(spec)
    keep = [name for name in table.column_names if name not in drop]
    if spec.task == "ner" and spec.tokens_field in keep:  # the words, beside their tags
        keep.remove(spec.tokens_field)
        keep.append(spec.tokens_field)
    out = pa.Table.from_arrays([table[n] for n in keep] + list(columns.values()),
                               names=keep + list(columns))
    return out.replace_schema_metadata(metadata(spec, made_by))


def empty_schema(schema: pa.Schema | None, spec: Spec, made_by: str) -> pa.Schema:
    drop = dropped(spec)
    kept = [f for f in (schema or []) if f.name not in drop]
    if spec.task == "ner":
        added = [pa.field("prediction", pa.list_(pa.string()))]
    elif spec.task in ("multiclass", "multilabel"):
        added = [pa.field("score", pa.list_(pa.float64()))]
    else:
        added = [pa.field("score", pa.float64())]
    return pa.schema(kept + added, metadata=metadata(spec, made_by))
