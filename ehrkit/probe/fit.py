"""Linear probes: impute and standardise with training-row statistics, fit one linear model per
C of a grid on the training rows, keep the C whose model scores best on the tuning rows, and
save everything as plain JSON (never a pickle).

The grid is walked from the smallest C (strongest regularisation, the fastest fits) up, and the
walk stops once `patience` (2) values in a row score strictly worse than the best so far: tuning scores
over C rise and then fall, and the weakly regularised fits past the peak are the slow ones (an
L1 fit at C = 100 on 1300 near-separable rows ran for minutes).

The chosen model is the one fitted on the training rows alone, not refitted on train + tuning:
the tuning score then describes exactly the model that is saved, and the held-out rows stay
untouched by every choice.

Models and solvers: logistic regression (binary, and multinomial for multiclass) with L2
(lbfgs) or L1 (liblinear for binary, saga for multiclass; Gupta et al.'s probes); regression
with ridge (L2, alpha = 1/C) or lasso (L1, alpha = 1/(C n), the same scaling as logistic
regression's C). max_iter 10000 and random_state = seed throughout.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ehrkit import __version__, log
from ehrkit.errors import DataError, InputFormatError
from ehrkit.io import read_json_artifact, write_json_artifact
from ehrkit.probe import scoring
from ehrkit.probe.data import HELD_OUT, TRAIN, TUNING
from ehrkit.probe.labels import Target

DEFAULT_GRID = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
# L1 fits at large C approach the unregularised solution on near-separable features and take
# minutes (liblinear, 2,000 x 600: 23 s at C=10), while they are rarely the best
L1_GRID = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0]


def default_grid(penalty: str) -> list[float]:
    return list(L1_GRID if penalty == "l1" else DEFAULT_GRID)
ZERO = 1e-8  # |w| below this counts as a zero weight (sparsity of L1 probes)
PROBE_FORMAT = "ehrkit.probe"
PROBE_VERSION = 1


@dataclass
class FitSettings:
    penalty: str = "l2"  # l2 | l1
    grid: list[float] = field(default_factory=lambda: list(DEFAULT_GRID))
    seed: int = 0
    max_iter: int = 10_000
    patience: int = 2  # stop the search after this many C values worse than the best (0: never)


# ----------------------------------------------------------------------------- preprocessing

@dataclass
class Preprocess:
    """Training-row column means (to fill NaN) and standard-scaler mean and scale."""

    fill: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Preprocess":
        from sklearn.preprocessing import StandardScaler

        seen = ~np.isnan(x)
        count = seen.sum(axis=0)
        total = np.where(seen, x, 0.0).sum(axis=0)
        fill = np.divide(total, count, out=np.zeros(x.shape[1]), where=count > 0)
        scaler = StandardScaler().fit(np.where(seen, x, fill))
        return cls(fill, scaler.mean_, scaler.scale_)

    def transform(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Standardised features and how many NaN cells were filled."""
        missing = np.isnan(x)
        imputed = int(missing.sum())
        if imputed:
            x = np.where(missing, self.fill, x)
        return (x - self.mean) / self.scale, imputed


# ----------------------------------------------------------------------------- one label

@dataclass
class LabelModel:
    """A fitted probe for one label: weights on standardised features, and how it was chosen."""

    target: dict  # Target.to_json(): name, field, index, task, classes, positive
    model: str  # logistic | ridge | lasso | constant
    penalty: str
    C: float | None
    coef: np.ndarray  # [K, d]; K = 1 except multiclass
    intercept: np.ndarray  # [K]
    tuning: dict = field(default_factory=dict)  # metric, value, grid [[C, value], ...]
    rows: dict = field(default_factory=dict)  # labelled rows per split
    held_out: dict = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.target["task"]

    @property
    def name(self) -> str:
        return self.target["name"]

    @property
    def sparsity(self) -> float:
        return float(np.mean(np.abs(self.coef) < ZERO)) if self.coef.size else 0.0

    def predict(self, z: np.ndarray) -> np.ndarray:
        """P(positive) [n] (binary), class probabilities [n, K] (multiclass), values [n]."""
        from scipy.special import expit, softmax

        logits = z @ self.coef.T + self.intercept
        if self.task == "binary":
            return expit(logits[:, 0])
        if self.task == "multiclass":
            return softmax(logits, axis=1)
        return logits[:, 0]

    def to_json(self) -> dict:
        return {"target": self.target, "model": self.model, "penalty": self.penalty, "C": self.C,
                "coef": self.coef.tolist(), "intercept": self.intercept.tolist(),
                "sparsity": self.sparsity, "tuning": self.tuning, "rows": self.rows,
                "held_out": self.held_out}

    @classmethod
    def from_json(cls, data: dict) -> "LabelModel":
        return cls(data["target"], data["model"], data["penalty"], data["C"],
                   np.asarray(data["coef"], np.float64), np.asarray(data["intercept"], np.float64),
                   data.get("tuning", {}), data.get("rows", {}), data.get("held_out", {}))


def _estimator(task: str, settings: FitSettings, C: float, n: int):
    l1 = settings.penalty == "l1"
    if task == "regression":
        from sklearn.linear_model import Lasso, Ridge

        if l1:
            return "lasso", Lasso(alpha=1.0 / (C * n), max_iter=settings.max_iter,
                                  random_state=settings.seed)
        return "ridge", Ridge(alpha=1.0 / C)
    from sklearn.linear_model import LogisticRegression

    solver = "lbfgs" if not l1 else "liblinear" if task == "binary" else "saga"
    return "logistic", LogisticRegression(C=C, l1_ratio=1.0 if l1 else 0.0, solver=solver,
                                          max_iter=settings.max_iter, random_state=settings.seed)


def fit_one(z: np.ndarray, y: np.ndarray, task: str, settings: FitSettings,
            C: float) -> tuple[str, np.ndarray, np.ndarray]:
    """(model name, coef [K, d], intercept [K]) of one fit."""
    from sklearn.exceptions import ConvergenceWarning

    from threadpoolctl import threadpool_limits

    name, model = _estimator(task, settings, C, len(y))
    target = y if task == "regression" else y.astype(np.int64)
    # One BLAS thread: the solvers do matrix-vector products, where threads cost more than they
    # give (lbfgs on 1300 x 714 ran 40 times faster with one thread than with two).
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(z, target)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.detail(f"C={C:g}: the solver did not converge in {settings.max_iter} iterations")
    coef = np.atleast_2d(np.asarray(model.coef_, np.float64))
    intercept = np.atleast_1d(np.asarray(model.intercept_, np.float64))
    if task == "multiclass" and len(coef) == 1:  # two classes: sklearn keeps one logit;
        coef = np.vstack([np.zeros_like(coef), coef])  # softmax([0, z]) = sigmoid(z)
        intercept = np.concatenate([[0.0], intercept])
    return name, coef, intercept


def fit_label(z: np.ndarray, target: Target, codes: np.ndarray, settings: FitSettings,
              held_out: bool = True, note=log.warn) -> LabelModel:
    """Fit on the labelled training rows, choose C on the labelled tuning rows, score held_out.
    `note` says when the label cannot be fitted as asked (log.warn; curves pass log.detail)."""
    known = ~np.isnan(target.y)
    train, tune = known & (codes == TRAIN), known & (codes == TUNING)
    rows = {"train": int(train.sum()), "tuning": int(tune.sum()),
            "held_out": int((known & (codes == HELD_OUT)).sum())}
    if rows["train"] == 0:
        raise DataError(f"label '{target.name}': no training rows with a label",
                        hint="check the split field and the label's null values")
    model = _constant(target, z.shape[1], target.y[train], settings, note) or \
        _search(z[train], target.y[train], z[tune], target.y[tune], target, settings, note)
    model.rows = rows
    if held_out:
        rows_ = known & (codes == HELD_OUT)
        model.held_out = scoring.metrics(target.task, target.y[rows_], model.predict(z[rows_]))
    return model


def _search(z_train, y_train, z_tune, y_tune, target: Target, settings: FitSettings,
            note) -> LabelModel:
    task = target.task
    if task == "multiclass":
        missing = len(target.classes) - len(np.unique(y_train))
        if missing:
            raise DataError(f"label '{target.name}': {missing} of its {len(target.classes)} "
                            "classes have no training rows", hint="merge rare classes, or "
                            "check the split")
    metric = scoring.SELECTION[task][0]
    grid, fits, best, worse = [], [], None, 0
    for C in sorted(settings.grid):  # strongest regularisation first: the fastest fits
        name, coef, intercept = fit_one(z_train, y_train, task, settings, C)
        candidate = LabelModel(target.to_json(), name, settings.penalty, C, coef, intercept)
        value = math.nan
        if len(settings.grid) > 1:
            value = scoring.selection(task, y_tune, candidate.predict(z_tune))[1]
        grid.append([C, value])
        fits.append(candidate)
        log.detail(f"  {target.name}: C={C:g} tuning {metric} {value:.4f}")
        if best is None or scoring.better(task, value, grid[best][1]):
            best, worse = len(fits) - 1, 0
        elif scoring.better(task, grid[best][1], value):  # strictly worse; ties (all-zero L1
            worse += 1                                     # weights at small C) go on
            if worse == settings.patience:
                break
    if len(settings.grid) > 1 and all(math.isnan(v) for _, v in grid):
        best = int(np.argmin([abs(math.log10(C)) for C, _ in grid]))
        note(f"label '{target.name}': {metric} is undefined on the {len(y_tune)} tuning "
             f"rows; C = {grid[best][0]:g} is used without a search")
    chosen = fits[best]
    chosen.tuning = {"metric": metric, "value": grid[best][1], "grid": grid}
    return chosen


def _constant(target: Target, dim: int, y: np.ndarray, settings: FitSettings,
              note) -> LabelModel | None:
    """A binary label with one class among the training rows cannot be fitted: predict its
    training prevalence (clipped away from 0 and 1) for every row, and say so."""
    if target.task != "binary" or len(np.unique(y)) > 1:
        return None
    p = min(max(float(np.mean(y)), 1e-6), 1 - 1e-6)
    note(f"label '{target.name}': its {len(y)} training rows all have one class; the "
             "probe predicts that class's prevalence for every row")
    return LabelModel(target.to_json(), "constant", settings.penalty, None, np.zeros((1, dim)),
                      np.array([math.log(p / (1 - p))]), {"metric": "auroc", "value": math.nan,
                                                         "grid": []})


# ----------------------------------------------------------------------------- the artifact

@dataclass
class Probe:
    """Everything needed to apply a probe to new embeddings, as JSON."""

    task: str
    feature_field: str
    dim: int
    preprocess: Preprocess
    labels: list[LabelModel]
    settings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # split, rows, imputed cells, embedding metadata

    def scores(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, int]:
        """Per label scores, the standardised features, and how many cells were imputed."""
        z, imputed = self.preprocess.transform(x)
        return [m.predict(z) for m in self.labels], z, imputed

    def to_json(self) -> dict:
        return {"format": PROBE_FORMAT, "version": PROBE_VERSION,
                "created_by": f"ehrkit {__version__}", "task": self.task,
                "feature_field": self.feature_field, "feature_dim": self.dim,
                "impute_means": self.preprocess.fill.tolist(),
                "scaler": {"mean": self.preprocess.mean.tolist(),
                           "scale": self.preprocess.scale.tolist()},
                "labels": [m.to_json() for m in self.labels],
                "settings": self.settings, "info": self.info}

    def save(self, path: str) -> None:
        write_json_artifact(path, _finite(self.to_json()))

    @classmethod
    def load(cls, path: str) -> "Probe":
        data = read_json_artifact(path, PROBE_FORMAT, PROBE_VERSION, "probe",
                                  hint="save one with ehrkit probe --save")
        try:
            pre = Preprocess(*(np.asarray(v, np.float64) for v in (
                data["impute_means"], data["scaler"]["mean"], data["scaler"]["scale"])))
            return cls(data["task"], data["feature_field"], int(data["feature_dim"]), pre,
                       [LabelModel.from_json(m) for m in data["labels"]],
                       data.get("settings", {}), data.get("info", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFormatError(f"{path}: probe is incomplete or damaged ({type(exc).__name__})"
                                   ) from None


def _finite(value):
    """NaN and infinities as null: JSON has no NaN, and strict readers reject it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
