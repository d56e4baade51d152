"""The metrics a probe needs, from sklearn.metrics, all in this one module so that they can be
swapped for `ehrkit.eval.metrics` later. Names follow the metric record conventions."""

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
    """Held-out metrics (also the learning-curve metrics): binary auroc and auprc_trapezoid
    (trapezoidal area under the precision-recall curve, the benchmark's AUPRC); multiclass
    auroc_macro (one-vs-rest) and accuracy; regression r2 and mse. NaN where undefined."""
    from sklearn.metrics import (accuracy_score, auc, mean_squared_error,
                                 precision_recall_curve, r2_score, roc_auc_score)

    nan = math.nan
    if task == "binary":
        if not _both_classes(y):
            return {"auroc": nan, "auprc_trapezoid": nan}
        precision, recall, _ = precision_recall_curve(y, score)
        return {"auroc": float(roc_auc_score(y, score)),
                "auprc_trapezoid": float(auc(recall, precision))}
    if task == "multiclass":
        if len(y) == 0:
            return {"auroc_macro": nan, "accuracy": nan}
        labels = y.astype(int)
        present = np.unique(labels)
        macro = nan
        if len(present) > 1:
            # one-vs-rest AUROC averaged over the classes present in these rows
            macro = float(np.mean([roc_auc_score(labels == k, score[:, k]) for k in present]))
        return {"auroc_macro": macro,
                "accuracy": float(accuracy_score(labels, score.argmax(axis=1)))}
    if len(y) < 2:
        return {"r2": nan, "mse": nan}
    return {"r2": float(r2_score(y, score)), "mse": float(mean_squared_error(y, score))}


def headline(task: str) -> str:
    """The metric a summary line shows first."""
    return {"binary": "auroc", "multiclass": "auroc_macro", "regression": "r2"}[task]
