"""Running a fine-tuned model over rows, and the metrics of its outputs.

`score_rows` sorts the rows by length and batches them by a budget of padded tokens (as
`ehrkit embed` does), runs the model under inference_mode (bf16 autocast on GPUs) and returns
the raw outputs in the rows' order: [rows, outputs] float32, or for ner one [positions, tags]
array per window. `row_metrics` turns them into the validation and test metrics, with the same
functions `ehrkit evaluate` uses (ehrkit.eval.metrics).
"""

from __future__ import annotations

import numpy as np
import torch

from ehrkit.embed.batching import Budget, plan
from ehrkit.finetune import models
from ehrkit.finetune.spec import Spec

BUDGET = Budget(tokens=16_384, rows=256)


def score_rows(model, featurizer, data, rows: np.ndarray, rt, budget: Budget = BUDGET):
    """Raw model outputs for `rows` of `data.prepared`, in the order of `rows`."""
    prepared, kind = data.prepared, featurizer.spec.kind
    lengths = np.zeros_like(prepared.lengths)
    lengths[rows] = prepared.lengths[rows]
    was_training = model.training
    model.eval()
    out: dict[int, np.ndarray] = {}
    try:
        with torch.inference_mode(), rt.autocast():
            for batch_rows in plan(lengths, budget):
                batch = featurizer.collate(prepared, batch_rows)
                batch = {k: v.to(rt.device) for k, v in batch.items()}
                raw = models.logits(model, kind, batch).float().cpu().numpy()
                for i, row in enumerate(batch_rows):
                    if kind == "ner":
                        n = int(prepared.lengths[row])
                        out[int(row)] = raw[i, :n]
                    else:
                        out[int(row)] = raw[i]
    finally:
        model.train(was_training)
    if kind == "ner":
        return [out.get(int(r)) for r in rows]
    width = featurizer.spec.outputs
    return np.stack([out.get(int(r), np.full(width, np.nan, np.float32)) for r in rows]) \
        if len(rows) else np.zeros((0, width), np.float32)


def row_metrics(spec: Spec, data, rows: np.ndarray, raw) -> dict:
    """Validation or test metrics of raw outputs for `rows` (ner: windows of whole docs)."""
    from ehrkit.eval import metrics as m

    if spec.task == "ner":
        from ehrkit.finetune.tagging import gold_and_predicted

        gold, pred = gold_and_predicted(spec, data, rows, raw)
        return m.sequence(gold, pred) if gold else {}
    y = data.y[rows]
    if spec.task == "regression":
        y = y * spec.target_scale + spec.target_mean
    return score_metrics(spec, y, models.to_scores(spec, raw))


def score_metrics(spec: Spec, y: np.ndarray, scores: np.ndarray) -> dict:
    """Metrics of row-task scores against targets y [rows, labels] (NaN: unknown), on the
    label's own scale."""
    from ehrkit.eval import metrics as m

    if spec.task == "multilabel":
        return m.multilabel(y, scores, spec.label_names)
    known = ~np.isnan(y[:, 0]) & np.isfinite(scores.reshape(len(y), -1)).all(axis=1)
    if not known.any():
        return {}
    y, scores = y[known, 0], scores[known]
    if spec.task == "binary":
        if len(np.unique(y)) < 2:
            return {"auroc": float("nan")}
        return m.binary(y, scores)
    if spec.task == "multiclass":
        return m.multiclass(y.astype(np.int64), scores)
    return m.regression(y, scores)
