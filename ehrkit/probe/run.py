"""`ehrkit probe` as one library call: read embedding records, fit (or load) linear probes,
write prediction records (or learning-curve metric records), save the probe as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from ehrkit import log
from ehrkit.errors import DataError, UsageError
from ehrkit.io import RecordWriter, output_format, read_table
from ehrkit.probe import scoring
from ehrkit.probe.curves import CurveSettings, learning_curves
from ehrkit.probe.data import HELD_OUT, SPLITS, TRAIN, TUNING, carve_tuning, codes_from_field, \
    features, group_ids, split_codes
from ehrkit.probe.fit import FitSettings, Preprocess, Probe, fit_label
from ehrkit.probe.labels import Labels, build, reapply
from ehrkit.probe.outliers import Forest, fit_forest
from ehrkit.probe.predictions import prediction_table

PREDICT = ("held_out", "all")
MODELS = ("auto", "logistic", "ridge")


@dataclass
class ProbeRequest:
    inputs: list[str]
    fmt: str | None = None
    output: str = "-"
    to: str | None = None
    feature_field: str = "embedding"
    label_fields: list[str] = field(default_factory=list)
    task: str = "auto"  # auto | binary | multiclass | multilabel | regression
    positive: str | None = None
    split_field: str = "split"
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    group_field: str | None = None
    predict: str = "held_out"  # held_out | all
    model: str = "auto"  # auto | logistic | ridge
    fit: FitSettings = field(default_factory=FitSettings)
    save: str | None = None
    load: str | None = None
    outliers: bool = False
    curves: CurveSettings = field(default_factory=CurveSettings)

    @property
    def learning_curve(self) -> bool:
        return bool(self.curves.fractions or self.curves.shots)

    def check(self) -> None:
        if self.predict not in PREDICT:
            raise UsageError(f"--predict {self.predict}: use held_out or all")
        if self.model not in MODELS:
            raise UsageError(f"--model {self.model}: use logistic or ridge")
        if self.fit.penalty not in ("l1", "l2"):
            raise UsageError(f"--penalty {self.fit.penalty}: use l1 or l2")
        if not self.fit.grid or any(not c > 0 for c in self.fit.grid):
            raise UsageError("--C needs positive values, e.g. 1e-3,1e-2,0.1,1")
        if self.load and (self.save or self.learning_curve):
            raise UsageError("--load applies a saved probe; it does not fit, save or draw curves")
        if self.learning_curve and (self.save or self.outliers):
            raise UsageError("learning curves write metric records only",
                             hint="fit and save the probe in a separate run without "
                             "--train-fraction/--shots")


def run_probe(req: ProbeRequest) -> dict:
    """The command: returns a summary (also logged on stderr)."""
    req.check()
    output_format(req.output, req.to)  # an unknown output format fails now, not after fitting
    timer = log.Timer()
    table = read_table(req.inputs, req.fmt)
    source = req.inputs[0] if len(req.inputs) == 1 and req.inputs[0] != "-" else "input"
    if table.num_rows == 0:
        raise DataError(f"{source}: no records", hint="probe needs embedding records")
    if req.load:
        return _apply(req, table, source, timer)
    return _fit(req, table, source, timer)


def _fit(req: ProbeRequest, table: pa.Table, source: str, timer: log.Timer) -> dict:
    x = features(table, req.feature_field, source)
    labels = _labels(req, table, source)
    codes, how = _splits(req, table, source)
    train = codes == TRAIN
    pre = Preprocess.fit(x[train])
    z, imputed = pre.transform(x)
    del x
    _describe(table.num_rows, z.shape[1], codes, how, imputed)
    if req.learning_curve:
        req.curves.check(labels.task)
        curve = learning_curves(z, labels, codes, req.fit, req.curves)
        _write(req, curve)
        return {"rows": table.num_rows, "metrics": curve.num_rows, "seconds": timer.seconds}
    models = [fit_label(z, t, codes, req.fit) for t in labels.targets]
    forest = fit_forest(z[train], req.fit.seed) if req.outliers else None
    probe = Probe(labels.task, req.feature_field, z.shape[1], pre, models,
                  _settings(req), {"split": how, "rows": _rows(codes), "imputed": imputed,
                                   "embedding": _metadata(table, "ehrkit.embedding")})
    if forest is not None:
        probe.info["outliers"] = forest.to_json()
    if req.save:
        probe.save(req.save)  # complete now, whatever becomes of the output (| head)
    rows = np.ones(len(codes), bool) if req.predict == "all" else codes == HELD_OUT
    scores = [m.predict(z[rows]) for m in models]
    outlier = forest.score(z[rows]) if forest is not None else None
    out_table = prediction_table(table.filter(pa.array(rows)), req.feature_field, probe,
                                 [t.y[rows] for t in labels.targets], scores, codes[rows], outlier)
    _write(req, out_table)
    _report(probe, out_table.num_rows, timer.seconds)
    return {"rows": table.num_rows, "written": out_table.num_rows, "seconds": timer.seconds,
            "labels": {m.name: {"C": m.C, "held_out": m.held_out} for m in models}}


def _labels(req: ProbeRequest, table: pa.Table, source: str) -> Labels:
    task = req.task
    if req.model == "ridge":
        if task not in ("auto", "regression"):
            raise UsageError(f"--model ridge is regression; it cannot fit a {task} task")
        task = "regression"
    labels = build(table, req.label_fields, task, req.positive, source)
    if req.model == "logistic" and labels.task == "regression":
        raise UsageError("--model logistic needs class labels; this label is a regression "
                         "target", hint="use --model ridge, or --task binary|multiclass")
    return labels


def _splits(req: ProbeRequest, table: pa.Table, source: str) -> tuple[np.ndarray, str]:
    codes, how = split_codes(table, req.split_field, req.group_field, req.val_fraction,
                             req.test_fraction, req.fit.seed, source)
    if not (codes == TRAIN).any():
        raise DataError(f"{source}: no training rows ({how})",
                        hint="the split field needs rows named train")
    if len(req.fit.grid) > 1 and not (codes == TUNING).any():
        groups = group_ids(table, req.group_field, source)
        codes = carve_tuning(codes, groups, req.val_fraction or 0.15, req.fit.seed)
        how += f"; no tuning rows, so a share {req.val_fraction or 0.15:g} of train tunes C"
    if req.predict == "held_out" and not (codes == HELD_OUT).any() and not req.learning_curve:
        log.warn("no held_out rows: nothing to predict (use --predict all to predict every row)")
    return codes, how


def _rows(codes: np.ndarray) -> dict:
    return {name: int((codes == i).sum()) for i, name in enumerate(SPLITS)}


def _describe(n: int, dim: int, codes: np.ndarray, how: str, imputed: int) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in _rows(codes).items())
    log.info(f"probe: {n} rows x {dim} features ({counts}; split {how})")
    if imputed:
        log.info(f"probe: {imputed} missing feature values filled with training-row means")


def _metadata(table: pa.Table, key: str):
    raw = (table.schema.metadata or {}).get(key.encode())
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None


def _settings(req: ProbeRequest) -> dict:
    return {"label_fields": req.label_fields, "task": req.task, "positive": req.positive,
            "split_field": req.split_field, "val_fraction": req.val_fraction,
            "test_fraction": req.test_fraction, "group_field": req.group_field,
            "model": req.model, "refit": "train only (C chosen on tuning, no refit on "
            "train + tuning)", "standardise": "StandardScaler on the training rows",
            "impute": "training-row column means", **asdict(req.fit)}


def _write(req: ProbeRequest, table: pa.Table) -> None:
    with RecordWriter(req.output, req.to, table.schema) as out:
        out.write(table)


def _apply(req: ProbeRequest, table: pa.Table, source: str, timer: log.Timer) -> dict:
    """--load: score new records with a saved probe; labels are written when present."""
    probe = Probe.load(req.load)
    if req.outliers and "outliers" not in probe.info:
        raise UsageError(f"{req.load} has no outlier forest", hint="fit it with --outliers --save")
    name = req.feature_field if req.feature_field != "embedding" else probe.feature_field
    x = features(table, name, source, dim=probe.dim)
    rows = np.ones(table.num_rows, bool)
    codes = None
    if req.split_field in table.column_names:
        codes = codes_from_field(table[req.split_field], req.split_field, source)
        if req.predict == "held_out":
            rows = codes == HELD_OUT
    x = x[rows]
    scores, z, imputed = probe.scores(x)
    if imputed:
        log.info(f"probe: {imputed} missing feature values filled with training-row means")
    kept = table.filter(pa.array(rows))
    truth = reapply(kept, [m.target for m in probe.labels], source)
    outlier = Forest.from_json(probe.info["outliers"]).score(z) if req.outliers else None
    out_table = prediction_table(kept, name, probe, truth, scores,
                                 codes[rows] if codes is not None else None, outlier)
    _write(req, out_table)
    log.info(f"probe: applied {req.load} ({probe.task}, {len(probe.labels)} labels) to "
             f"{out_table.num_rows} rows in {timer.seconds:.1f} s")
    return {"rows": table.num_rows, "written": out_table.num_rows, "seconds": timer.seconds}


def _report(probe: Probe, written: int, seconds: float) -> None:
    for m in probe.labels:
        tuning = m.tuning.get("value")
        shown = "no search" if tuning is None or tuning != tuning else \
            f"tuning {m.tuning['metric']} {tuning:.3f}"
        held = ", ".join(f"{k} {v:.3f}" for k, v in m.held_out.items())
        c = "constant" if m.C is None else f"C={m.C:g}"
        log.info(f"  {m.name}: {m.model} {m.penalty} {c} ({shown}); held_out {held or 'none'}; "
                 f"{m.sparsity:.1%} zero weights; train {m.rows.get('train')}")
    if len(probe.labels) > 1:
        key = scoring.headline("binary")
        values = [m.held_out.get(key) for m in probe.labels]
        values = [v for v in values if v is not None and v == v]
        if values:
            log.info(f"probe: macro {key} over {len(values)} labels: {np.mean(values):.3f}")
    log.info(f"probe: wrote {written} predictions in {seconds:.1f} s")
