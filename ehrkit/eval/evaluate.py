"""`ehrkit evaluate` as a library call: prediction records in, metric records out.

Every metric gets a percentile bootstrap interval (`resamples`, 0 for none). With a patient
field the bootstrap draws patients, so the admissions of one patient move together (the
benchmark's row bootstrap would understate the uncertainty when patients repeat). A paired
comparison applies the same resamples to both files and reports the difference b - a with its
interval. Subgroups (`by`) repeat everything on each value of a field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ehrkit import log
from ehrkit.eval.predictions import Fields, Predictions, aggregate, align, from_table
from ehrkit.errors import UsageError
from ehrkit.io import read_table

AGGREGATIONS = ("clinicalbert", "mean", "max")


@dataclass
class EvaluateRequest:
    inputs: list
    fmt: str | None = None
    fields: Fields = field(default_factory=Fields)
    task: str = "auto"
    name: str | None = None  # the `task` value of the metric records (default: the label field)
    threshold: float = 0.5
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    patient_field: str | None = None
    by: list = field(default_factory=list)
    aggregate: str | None = None
    group_by: list = field(default_factory=list)
    scale: float = 2.0
    compare: list | None = None
    on: list = field(default_factory=list)
    los_buckets: bool = False
    plots: Path | None = None


def run_evaluate(req: EvaluateRequest) -> list[dict]:
    """Metric records for the overall rows and each subgroup (and the comparison, if any)."""
    _check(req)
    a = _load(req.inputs, req)
    b = _load(req.compare, req) if req.compare else None
    if a is not None and b is not None:
        a, b = align(a, b, list(req.on))
    if a is None or len(a) == 0:
        log.warn("no labelled predictions: nothing to evaluate")
        return []
    task = req.name or a.title or req.fields.label
    records = []
    for subgroup, rows in _subgroups(a, req.by):
        part_a = a if rows is None else a.take(rows)
        part_b = None if b is None else (b if rows is None else b.take(rows))
        records += _evaluate(part_a, part_b, req, task, subgroup)
    if req.plots:
        from ehrkit.eval.plots import write_plots

        for p, label in ((a, "a"), (b, "b")):
            if p is not None:
                write_plots(p, Path(req.plots), prefix="" if b is None else f"{label}-",
                            threshold=req.threshold)
    return records


def _check(req: EvaluateRequest) -> None:
    if req.aggregate and req.aggregate not in AGGREGATIONS:
        raise UsageError(f"--aggregate: use one of {', '.join(AGGREGATIONS)}")
    if req.aggregate and not req.group_by:
        raise UsageError("--aggregate needs --group-by (e.g. --group-by hadm_id)")
    if not 0 < req.confidence < 1:
        raise UsageError(f"--confidence must be between 0 and 1 (got {req.confidence})")
    if req.resamples < 0:
        raise UsageError("--bootstrap must be 0 (no intervals) or a number of resamples")


def _load(paths: list, req: EvaluateRequest) -> Predictions | None:
    """The predictions of these inputs, aggregated when asked; None for an empty input."""
    source = paths[0] if len(paths) == 1 else "input"
    table = read_table(paths, req.fmt)
    if table.num_rows == 0:
        return None
    preds = from_table(table, req.fields, req.task, source)
    if req.aggregate:
        n = len(preds)
        preds = aggregate(preds, list(req.group_by), req.aggregate, req.scale)
        log.info(f"{source}: {n} chunk predictions aggregated ({req.aggregate}) into {len(preds)} "
                 f"groups by {', '.join(req.group_by)}")
    return preds


def _subgroups(preds: Predictions, by: list):
    yield None, None
    for name in by:
        values = preds.column(name)
        shown = np.array(["null" if v is None else str(v) for v in values.tolist()], dtype=object)
        for value in sorted(set(shown.tolist())):
            yield f"{name}={value}", np.flatnonzero(shown == value)


def _evaluate(a: Predictions, b: Predictions | None, req: EvaluateRequest, task: str,
              subgroup: str | None) -> list[dict]:
    from ehrkit.eval.bootstrap import interval

    clusters = a.column(req.patient_field) if req.patient_field else None
    n, unit = (len(a), "rows") if clusters is None else (len(set(clusters.tolist())), "patients")
    points = [point(a, req)] + ([point(b, req)] if b is not None else [])
    samples = resample(a, b, req, clusters) if req.resamples else [{} for _ in points]
    sources = [None] if b is None else ["a", "b"]
    if b is not None:
        points.append({k: points[1][k] - points[0][k] for k in points[0]})
        samples.append({k: samples[1][k] - samples[0][k] for k in samples[0]})
        sources.append("b-a")
    records = []
    for values, draws, source in zip(points, samples, sources):
        for metric, value in values.items():
            low, high = (interval(draws[metric], req.confidence) if metric in draws
                         else (None, None))
            records.append({"task": task, "metric": metric, "value": _num(value),
                            "ci_low": _num(low), "ci_high": _num(high), "n": n, "unit": unit,
                            "subgroup": subgroup, "source": source})
    return records


def _num(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def point(p: Predictions, req: EvaluateRequest, weights: np.ndarray | None = None) -> dict:
    """Every metric of the task on these predictions."""
    from ehrkit.eval import metrics

    if p.kind == "binary":
        return metrics.binary(p.label, p.score, threshold=req.threshold, weights=weights)
    if p.kind == "multiclass":
        return metrics.multiclass(p.label, p.score, weights=weights)
    if p.kind == "multilabel":
        return metrics.multilabel(p.label, p.score, p.names, weights=weights)
    if p.kind == "sequence":
        return metrics.sequence(list(p.label), list(p.score), weights=weights)
    values = metrics.regression(p.label, p.score, weights=weights)
    if req.los_buckets:  # the benchmark's kappa on 10 length-of-stay buckets (values in days)
        values["kappa_linear"] = metrics.cohen_kappa(
            metrics.los_buckets(p.label), metrics.los_buckets(p.score), weights="linear",
            sample_weight=weights)
    return values


def resample(a: Predictions, b: Predictions | None, req: EvaluateRequest,
             clusters: np.ndarray | None) -> list[dict]:
    """Bootstrap draws of every metric, the same resamples for a and b."""
    from ehrkit.eval.bootstrap import bootstrap_binary, resample_counts

    if a.kind == "binary":
        from ehrkit.eval.metrics import BINARY

        draws = bootstrap_binary(a.label, a.score, req.resamples, req.seed, clusters,
                                 metrics=BINARY, threshold=req.threshold,
                                 p_other=None if b is None else b.score)
        return [draws] if b is None else list(draws)
    draws = [dict() for p in (a, b) if p is not None]
    for counts in resample_counts(len(a), req.resamples, req.seed, clusters):
        for store, p in zip(draws, (a, b)):
            for metric, value in point(p, req, counts).items():
                store.setdefault(metric, []).append(value)
    return [{k: np.asarray(v, dtype=np.float64) for k, v in store.items()} for store in draws]
