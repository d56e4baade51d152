"""`evaluate --plots DIR`: ROC, precision-recall and calibration curves as PNG files.

Drawn with matplotlib's Agg backend (no display needed on a server); the curves come from
scikit-learn so the pictures show exactly what the standard tools compute. Each file is
written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ehrkit import log
from ehrkit.eval.predictions import Predictions
from ehrkit.io import atomic_path

MAX_CURVES = 25  # one line per label or class, up to the benchmark's 25 phenotypes


def write_plots(p: Predictions, directory: Path, prefix: str = "", threshold: float = 0.5) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    curves = _binary_views(p)
    if not curves:
        log.info(f"--plots: no curves for {p.kind} predictions")
        return []
    written = [_save(_roc(curves), directory / f"{prefix}roc.png"),
               _save(_pr(curves), directory / f"{prefix}pr.png"),
               _save(_calibration(curves), directory / f"{prefix}calibration.png")]
    log.info(f"--plots: {', '.join(str(w) for w in written)}")
    return written


def _binary_views(p: Predictions) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, labels, scores) per curve: the task itself, or one-vs-rest per label or class."""
    if p.kind == "binary":
        return [("", p.label, p.score)]
    if p.kind == "multilabel":
        views = []
        for j, name in enumerate(p.names[:MAX_CURVES]):
            known = ~np.isnan(p.label[:, j])
            views.append((name, p.label[known, j], p.score[known, j]))
        return views
    if p.kind == "multiclass":
        return [(name, (p.label == j).astype(float), p.score[:, j])
                for j, name in enumerate(p.names[:MAX_CURVES])]
    return []


def _usable(y: np.ndarray) -> bool:
    return len(y) > 0 and 0 < y.sum() < len(y)


def _figure(title: str, xlabel: str, ylabel: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    return fig, ax


def _roc(curves):
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _figure("ROC", "1 - specificity", "sensitivity")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    for name, y, s in curves:
        if _usable(y):
            fpr, tpr, _ = roc_curve(y, s)
            ax.plot(fpr, tpr, lw=1.2, label=f"{name} AUROC {roc_auc_score(y, s):.3f}".strip())
    ax.legend(loc="lower right", fontsize=7)
    return fig


def _pr(curves):
    from sklearn.metrics import auc, precision_recall_curve

    fig, ax = _figure("Precision-recall", "recall (sensitivity)", "precision")
    for name, y, s in curves:
        if _usable(y):
            precision, recall, _ = precision_recall_curve(y, s)
            area = auc(recall, precision)
            ax.plot(recall, precision, lw=1.2, label=f"{name} AUPRC (trapezoid) {area:.3f}".strip())
    ax.legend(loc="lower left", fontsize=7)
    return fig


def _calibration(curves):
    from sklearn.calibration import calibration_curve

    fig, ax = _figure("Calibration (10 equal-width bins)", "mean predicted probability",
                      "observed fraction positive")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    for name, y, s in curves:
        if _usable(y):
            observed, predicted = calibration_curve(y, np.clip(s, 0, 1), n_bins=10)
            ax.plot(predicted, observed, marker="o", ms=3, lw=1.2, label=name or None)
    if any(name for name, _, _ in curves):
        ax.legend(loc="upper left", fontsize=7)
    return fig


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    return path
