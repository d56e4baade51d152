"""Learning curves: how a probe's held-out score grows with its labelled training data.

Two protocols, each repeated `replicates` times with seeded draws:

- `--train-fraction f`: a share f of the labelled training rows, drawn per class (at least one
  row of each class) so both classes appear (regression: a plain random share, at least 2).
- `--shots k` (EHRSHOT's few-shot protocol): k rows of each class, i.e. k positives and k
  negatives for a binary label; a replicate is skipped, with a note, when a class has fewer
  than k training rows. Not for regression.

Every fit chooses C on the (full) tuning rows and is scored on the held_out rows. The result is
metric records (task = label name, metric, value, n held-out rows, train_fraction or shots,
replicate, n_train) and a table of mean +- sd on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ehrkit import log
from ehrkit.errors import UsageError
from ehrkit.probe import scoring
from ehrkit.probe.data import HELD_OUT, OUTSIDE, TRAIN
from ehrkit.probe.fit import FitSettings, fit_label
from ehrkit.probe.labels import Labels, Target


@dataclass
class CurveSettings:
    fractions: list[float] | None = None
    shots: list[int] | None = None
    replicates: int = 5

    def check(self, task: str) -> None:
        if self.replicates < 1:
            raise UsageError("--replicates must be at least 1")
        if any(not 0 < f <= 1 for f in self.fractions or []):
            raise UsageError("--train-fraction values must be in (0, 1]")
        if any(k < 1 for k in self.shots or []):
            raise UsageError("--shots values must be at least 1")
        if self.shots and task == "regression":
            raise UsageError("--shots needs classes; use --train-fraction for regression")


def metric_schema(settings: CurveSettings) -> pa.Schema:
    fields = [("task", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
              ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("n", pa.int64()),
              ("unit", pa.string())]
    if settings.fractions:
        fields.append(("train_fraction", pa.float64()))
    if settings.shots:
        fields.append(("shots", pa.int64()))
    return pa.schema(fields + [("replicate", pa.int64()), ("n_train", pa.int64())])


def _by_fraction(y: np.ndarray, fraction: float, task: str, rng) -> np.ndarray:
    if fraction >= 1:
        return np.arange(len(y))
    if task == "regression":
        return np.sort(rng.choice(len(y), max(2, round(fraction * len(y))), replace=False))
    parts = []
    for value in np.unique(y):
        rows = np.flatnonzero(y == value)
        parts.append(rng.choice(rows, max(1, round(fraction * len(rows))), replace=False))
    return np.sort(np.concatenate(parts))


def _by_shots(y: np.ndarray, k: int, classes: int, rng) -> np.ndarray | None:
    parts = []
    for value in range(classes):
        rows = np.flatnonzero(y == value)
        if len(rows) < k:
            return None
        parts.append(rng.choice(rows, k, replace=False))
    return np.sort(np.concatenate(parts))


def _plan(settings: CurveSettings) -> list[tuple[str, float]]:
    return [("train_fraction", f) for f in settings.fractions or []] + \
        [("shots", k) for k in settings.shots or []]


def learning_curves(z: np.ndarray, labels: Labels, codes: np.ndarray, fit: FitSettings,
                    settings: CurveSettings) -> pa.Table:
    """Metric records for every label, protocol point and replicate."""
    records = []
    for number, target in enumerate(labels.targets):
        records += _label_curve(z, target, number, codes, fit, settings)
    table = pa.Table.from_pylist(records, schema=metric_schema(settings))
    _report(records)
    return table


def _label_curve(z, target: Target, number: int, codes, fit: FitSettings,
                 settings: CurveSettings) -> list[dict]:
    known = ~np.isnan(target.y)
    train = np.flatnonzero(known & (codes == TRAIN))
    held = known & (codes == HELD_OUT)
    out, classes = [], len(target.classes or [])
    for kind, point in _plan(settings):
        skipped = 0
        for replicate in range(settings.replicates):
            rng = np.random.default_rng([fit.seed, number, 0 if kind == "shots" else 1,
                                         int(round(point * 1e6)), replicate])
            y = target.y[train]
            pick = _by_shots(y, int(point), classes, rng) if kind == "shots" else \
                _by_fraction(y, point, target.task, rng)
            if pick is None:
                skipped += 1
                continue
            if kind == "shots" or point < 1 or replicate == 0:  # the whole train set: once
                rows = np.zeros(len(codes), bool)
                rows[train[pick]] = True
                sub = np.where(rows, TRAIN, np.where(codes == TRAIN, OUTSIDE, codes))
                model = fit_label(z, target, sub, fit, held_out=False, note=log.detail)
                scores = scoring.metrics(target.task, target.y[held], model.predict(z[held]))
            for metric, value in scores.items():
                record = {"task": target.name, "metric": metric, "value": value,
                          "ci_low": None, "ci_high": None, "n": int(held.sum()), "unit": "rows",
                          "replicate": replicate, "n_train": int(len(pick))}
                record["train_fraction" if kind == "train_fraction" else "shots"] = point
                out.append(record)
        if skipped:
            log.info(f"label '{target.name}': {int(point)} shots skipped in {skipped} of "
                     f"{settings.replicates} replicates (a class has fewer than {int(point)} "
                     "training rows)")
    return out


def _report(records: list[dict]) -> None:
    """One line per label and protocol point: mean +- sd of each metric over replicates."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        point = f"fraction {r['train_fraction']:g}" if r.get("train_fraction") is not None \
            else f"shots {r['shots']}"
        groups.setdefault((r["task"], point), []).append(r)
    if not groups:
        return
    metrics = list(dict.fromkeys(r["metric"] for r in records))
    log.info("learning curve on the held_out rows (mean +- sd over replicates)")
    log.info(f"{'label':<28} {'train':<16} {'n_train':>8}  " +
             "  ".join(f"{m:<16}" for m in metrics))
    for (task, point), rows in groups.items():
        cells = []
        for metric in metrics:
            values = np.array([r["value"] for r in rows if r["metric"] == metric], np.float64)
            values = values[np.isfinite(values)]
            mean = f"{values.mean():.3f}" if len(values) else "nan"
            sd = f"{values.std(ddof=1):.3f}" if len(values) > 1 else "0.000"
            cells.append(f"{mean + ' +- ' + sd:<16}")
        n_train = np.mean([r["n_train"] for r in rows])
        log.info(f"{task[:28]:<28} {point:<16} {n_train:>8.1f}  " + "  ".join(cells))
