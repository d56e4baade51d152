"""The metrics a probe needs: how C is chosen on the tuning rows, and the held-out metrics
(ehrkit.eval.metrics, the same numbers `ehrkit evaluate` gives). Names follow the metric
record conventions."""

from __future__ import annotations

import math

import numpy as np

# Which tuning metric chooses C, per task, and whether larger is better. Multiclass uses the
# log-loss: it is defined even when a rare class is missing from the tuning rows, where the
# macro-AUROC is not.
SELECTION = {"binary": ("auroc", True), "multiclass": ("log_loss", False),
             "regression": ("r2", True)}


def _both_classes(y: np.ndarray) -> bool:
    return len(y) > 0 and 0 < float(np.sum(y == 1)) < len(y)


def selection(task: str, y: np.ndarray, score: np.ndarray) -> tuple[str, float]:
    """(metric name, value) on tuning rows; NaN when the metric is undefined there."""
    from sklearn.metrics import log_loss, r2_score, roc_auc_score

    name = SELECTION[task][0]
    if len(y) == 0:
        return name, math.nan
    if task == "binary":
        if _both_classes(y):
            return name, float(roc_auc_score(y, score))
        return name, math.nan
    if task == "multiclass":
        return name, float(log_loss(y.astype(int), score, labels=list(range(score.shape[1]))))
    return name, float(r2_score(y, score)) if len(y) > 1 else math.nan


def better(task: str, a: float, b: float) -> bool:
    """Whether tuning value a beats b (NaN never wins)."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b if SELECTION[task][1] else a < b


def metrics(task: str, y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Held-out metrics (also the learning-curve metrics), from ehrkit.eval.metrics: binary
    auroc and auprc_trapezoid (the benchmark's AUPRC); multiclass auroc_macro (one-vs-rest)
    and accuracy; regression r2 and mse. NaN where undefined."""
    from ehrkit.eval import metrics as m

    keys = {"binary": ("auroc", "auprc_trapezoid"), "multiclass": ("auroc_macro", "accuracy"),
            "regression": ("r2", "mse")}[task]
    got: dict = {}
    if task == "binary" and len(y):
        got = m.binary(y, score)
    elif task == "multiclass" and len(y):
        got = m.multiclass(y.astype(int), score)
    elif task == "regression" and len(y) > 1:
        got = m.regression(y, score)
    return {k: float(got.get(k, math.nan)) for k in keys}


def headline(task: str) -> str:
    """The metric a summary line shows first."""
    return {"binary": "auroc", "multiclass": "auroc_macro", "regression": "r2"}[task]
