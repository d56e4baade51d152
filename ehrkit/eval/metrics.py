"""Metrics for `ehrkit evaluate`: pure numpy functions that return {metric name: float}.

The names are those of the metric record kind (auroc, auprc_trapezoid, ...). Definitions follow
the tools the source works used, so numbers can be compared with published ones: AUROC,
average precision and the confusion metrics equal scikit-learn's; "AUPRC" is the trapezoidal
area under `precision_recall_curve` as ClinicalBERT and the MIMIC-III benchmark compute it
(it is not average precision); RP80 is ClinicalBERT's; min(+P, Se) is the benchmark's; entity
F1 is seqeval's default (conlleval-style) mode.

Two rules hold everywhere:

- A metric that is undefined on the data is NaN, never a made-up 0: AUROC with one class,
  precision with nothing predicted positive, Pearson with a constant input. (scikit-learn
  returns 0 with a warning in several of these cases.) A silent 0 would drag a bootstrap
  interval down unnoticed; `bootstrap.interval` skips NaN instead.
- `weights` are non-negative row weights. Integer weights give exactly the result of repeating
  each row that many times (weight 0 = the row is absent), so a bootstrap resample is a vector
  of counts and rows are never copied.

Binary curve metrics collapse the rows to their distinct scores with one sort; every curve
metric is then a cumulative sum over those tie groups. `binary_from_groups` works on a 2-D block
of group counts, one row per bootstrap resample, so the point value and every resample go
through the very same code.
"""

from __future__ import annotations

from itertools import chain

import numpy as np

from ehrkit.errors import DataError, UsageError

BINARY = ("auroc", "auprc_trapezoid", "average_precision", "rp80", "min_precision_sensitivity",
          "brier", "ece", "accuracy", "f1", "precision", "recall", "balanced_accuracy", "prevalence")
MULTICLASS = ("accuracy", "macro_f1", "auroc_macro", "auroc_weighted", "kappa", "kappa_linear")
MULTILABEL = ("auroc_macro", "auroc_micro", "auroc_weighted")  # plus auroc[<name>] per label
REGRESSION = ("mse", "mae", "rmse", "pearson", "spearman", "r2")
SEQUENCE = ("entity_f1", "entity_precision", "entity_recall", "token_f1", "token_accuracy")
_CURVE = {"auprc_trapezoid", "average_precision", "rp80", "min_precision_sensitivity"}
_AT_THRESHOLD = {"accuracy", "f1", "precision", "recall", "balanced_accuracy"}
RP80_PRECISION = 0.799999  # ClinicalBERT's cut: "precision > 0.8" with float slack
ECE_BINS = 10
LOS_EDGES_DAYS = np.array([1, 2, 3, 4, 5, 6, 7, 8, 14], dtype=np.float64)


def _div(num, den):
    """num / den elementwise, NaN where den == 0, without warnings."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _weights(weights, n: int, what: str) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.shape != (n,):
        raise DataError(f"{what}: {w.shape[0] if w.ndim else 0} weights for {n} rows")
    if not np.issubdtype(w.dtype, np.integer):
        w = w.astype(np.float64)
        bad = ~np.isfinite(w) | (w < 0)
    else:
        bad = w < 0
    if bad.any():
        raise DataError(f"{what}: weight is negative or not finite at row {_first(bad)}")
    return w


def check_scores(p, n: int | None, what: str, field: str = "score") -> np.ndarray:
    """One finite float64 per row (`n` rows when given), else a DataError naming the row."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 1:
        raise DataError(f"{what}: '{field}' must be one number per row")
    if n is not None and p.shape[0] != n:
        raise DataError(f"{what}: {p.shape[0]} values of '{field}' for {n} labels")
    bad = ~np.isfinite(p)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"{what}: '{field}' is missing or not finite at row {row}")
    return p


def check_binary_labels(y, what: str) -> np.ndarray:
    """0/1 (or bool) labels as a bool array, else a DataError naming the first bad row."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise DataError(f"{what}: 'label' must be one value per row")
    if y.dtype == bool:
        return y
    yf = y.astype(np.float64)
    bad = (yf != 0) & (yf != 1)  # NaN is bad too
    if bad.any():
        raise DataError(f"{what}: 'label' must be 0 or 1 (row {_first(bad)})")
    return yf == 1


# ---------------------------------------------------------------------------- binary

def rank_groups(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct scores in descending order, and each row's group index into them (one sort)."""
    uniq, inv = np.unique(p, return_inverse=True)
    return uniq[::-1].copy(), (len(uniq) - 1) - inv.reshape(-1)


def score_groups(y, p, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(descending distinct scores, positive weight per score, negative weight per score)."""
    scores, g = rank_groups(p)
    G = len(scores)
    if weights is None:
        pos = np.bincount(g[y], minlength=G)
        return scores, pos, np.bincount(g, minlength=G) - pos
    pos = np.bincount(g, weights=np.where(y, weights, 0), minlength=G)
    neg = np.bincount(g, weights=np.where(y, 0, weights), minlength=G)
    if np.issubdtype(np.asarray(weights).dtype, np.integer):  # keep counting exact
        pos, neg = pos.astype(np.int64), neg.astype(np.int64)
    return scores, pos, neg


def _auroc_from_counts(pos, neg, tps, P, N):
    # A negative in tie group k is outranked by every positive in groups before k and ties with
    # the positives of its own group (which count half): neg_k * (tps_k - pos_k / 2). In
    # integers this is exact; it equals the trapezoidal area under the ROC curve.
    credit = (neg * (2 * tps - pos)).sum(axis=1)
    return _div(credit, 2.0 * P * N)


def _ece(scores, pos, neg, W):
    # Equal-width bins over [0, 1]: bin = min(floor(10 p), 9). ECE = sum over bins of
    # (rows in bin / rows) * |observed positive rate - mean score| = sum |pos_b - score_b| / W.
    # Scores are sorted (descending), so each bin is a contiguous run of groups.
    bins = np.clip(np.floor(scores * ECE_BINS), 0, ECE_BINS - 1)
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    mass = np.add.reduceat((pos + neg) * scores, starts, axis=1)
    hits = np.add.reduceat(pos, starts, axis=1)
    return _div(np.abs(hits - mass).sum(axis=1), W)


def binary_from_groups(scores, pos, neg, threshold: float = 0.5,
                       names=BINARY) -> dict[str, np.ndarray]:
    """Binary metrics from tie-group counts: `scores` (G,) distinct scores in descending order,
    `pos` and `neg` (R, G) positive and negative counts (or weights) per group, one row per
    replicate (R = 1 for a plain evaluation). Returns {name: array of R values}.

    A group with zero count (absent from a resample) behaves as if it were not there: its
    precision repeats the previous point's, and before the first present group it is 1, the
    point (recall 0, precision 1) that sklearn's curve starts from.
    """
    unknown = set(names) - set(BINARY)
    if unknown:
        raise UsageError(f"unknown binary metric(s): {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(BINARY)}")
    pos, neg = np.atleast_2d(pos), np.atleast_2d(neg)
    P, N = pos.sum(axis=1), neg.sum(axis=1)
    W = P + N
    out: dict[str, np.ndarray] = {}
    wanted = set(names)
    if wanted & ({"auroc"} | _CURVE):
        tps = np.cumsum(pos, axis=1)
        if "auroc" in wanted:
            out["auroc"] = _auroc_from_counts(pos, neg, tps, P, N)
        if wanted & _CURVE:
            out.update(_curve(pos, neg, tps, P, wanted))
    if wanted & _AT_THRESHOLD:
        out.update(_at_threshold(scores, pos, neg, P, N, W, threshold, wanted))
    if "brier" in wanted:
        out["brier"] = _div(pos @ np.square(1.0 - scores) + neg @ np.square(scores), W)
    if "ece" in wanted:
        out["ece"] = _ece(scores, pos, neg, W)
    if "prevalence" in wanted:
        out["prevalence"] = _div(P, W)
    return {name: out[name] for name in names}


def _curve(pos, neg, tps, P, wanted) -> dict[str, np.ndarray]:
    ps = tps + np.cumsum(neg, axis=1)
    precision = np.ones(ps.shape)
    np.divide(tps, ps, out=precision, where=ps > 0)
    no_pos = P == 0
    out = {}
    if "average_precision" in wanted or "auprc_trapezoid" in wanted:
        ap_sum = (pos * precision).sum(axis=1)
        out["average_precision"] = _div(ap_sum, P)
        if "auprc_trapezoid" in wanted:
            # Trapezoids between consecutive curve points: recall steps by pos_k / P, the height
            # is the mean of this point's precision and the previous one (1 at recall 0).
            prev = (pos[:, 1:] * precision[:, :-1]).sum(axis=1) + pos[:, 0]
            out["auprc_trapezoid"] = _div(ap_sum + prev, 2.0 * P)
    recall = _div(tps, P[:, None])
    if "rp80" in wanted:
        # ClinicalBERT walks the curve by increasing threshold and takes the first row with
        # precision > 0.8: in our descending order, the last such group.
        ok = precision > RP80_PRECISION
        last = ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
        hit = recall[np.arange(len(last)), last]
        out["rp80"] = np.where(no_pos, np.nan, np.where(ok.any(axis=1), hit, 0.0))
    if "min_precision_sensitivity" in wanted:
        best = np.minimum(precision, np.nan_to_num(recall)).max(axis=1)
        out["min_precision_sensitivity"] = np.where(no_pos, np.nan, best)
    return out


def _at_threshold(scores, pos, neg, P, N, W, threshold, wanted) -> dict[str, np.ndarray]:
    k = int(np.searchsorted(-scores, -threshold, side="right"))  # groups with score >= threshold
    tp, fp = pos[:, :k].sum(axis=1), neg[:, :k].sum(axis=1)
    fn, tn = P - tp, N - fp
    values = {
        "accuracy": lambda: _div(tp + tn, W),
        "f1": lambda: _div(2 * tp, 2 * tp + fp + fn),
        "precision": lambda: _div(tp, tp + fp),
        "recall": lambda: _div(tp, P),
        "balanced_accuracy": lambda: (_div(tp, P) + _div(tn, N)) / 2,
    }
    return {name: f() for name, f in values.items() if name in wanted}


def binary(y, p, threshold: float = 0.5, weights=None) -> dict[str, float]:
    """Binary classification metrics of probabilities `p` for 0/1 labels `y`.

    auroc (ties count half); auprc_trapezoid (sklearn `auc(recall, precision)` over
    `precision_recall_curve`, with its appended point recall 0, precision 1);
    average_precision; rp80 (recall at the lowest threshold whose precision > 0.799999, 0 if
    none); min_precision_sensitivity (max over thresholds of min(precision, recall)); brier;
    ece (10 equal-width bins over [0, 1], bin = min(floor(10 p), 9), each bin's |positive rate -
    mean score| weighted by its share of rows); at `threshold` (score >= threshold predicts 1):
    accuracy, f1, precision, recall, balanced_accuracy; prevalence.
    """
    what = "binary metrics"
    y = check_binary_labels(y, what)
    p = check_scores(p, len(y), what)
    w = _weights(weights, len(y), what)
    scores, pos, neg = score_groups(y, p, w)
    values = binary_from_groups(scores, pos[None], neg[None], threshold)
    return {name: float(v[0]) for name, v in values.items()}


def _auroc(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> tuple[float, float, float]:
    """(AUROC, positive weight, negative weight) of one binary problem."""
    _, pos, neg = score_groups(y, s, w)
    pos, neg = pos[None], neg[None]
    P, N = pos.sum(axis=1), neg.sum(axis=1)
    return float(_auroc_from_counts(pos, neg, np.cumsum(pos, axis=1), P, N)[0]), float(P[0]), float(N[0])


# ---------------------------------------------------------------------------- multiclass

def cohen_kappa(a, b, weights: str | None = None, sample_weight=None) -> float:
    """Cohen's kappa between two labelings; `weights` None, "linear" or "quadratic".

    As in sklearn's cohen_kappa_score, the disagreement weights use each label's position among
    the labels present in `a` or `b`, not its value (this matters only when a label in between
    is absent from both)."""
    if weights not in (None, "linear", "quadratic"):
        raise UsageError(f"kappa weights must be none, linear or quadratic, not {weights!r}")
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(f"cohen kappa: {a.shape[0]} and {b.shape[0]} labels differ in length")
    w = _weights(sample_weight, len(a), "cohen kappa")
    w = np.ones(len(a)) if w is None else w.astype(np.float64)
    present = w > 0
    labels = np.unique(np.concatenate([a[present], b[present]]))
    L = len(labels)
    if L == 0:
        return float("nan")
    ia = np.minimum(np.searchsorted(labels, a), L - 1)  # absent rows (weight 0) land anywhere
    ib = np.minimum(np.searchsorted(labels, b), L - 1)
    confusion = np.bincount(ia * L + ib, weights=w, minlength=L * L).reshape(L, L)
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    pos = np.arange(L)
    if weights is None:
        cost = 1.0 - np.eye(L)
    elif weights == "linear":
        cost = np.abs(pos[:, None] - pos[None, :]).astype(np.float64)
    else:
        cost = np.square(pos[:, None] - pos[None, :]).astype(np.float64)
    return float(1.0 - _div((cost * confusion).sum(), (cost * expected).sum()))


def multiclass(y, P, weights=None) -> dict[str, float]:
    """Metrics of class probabilities `P` (n, K) for integer labels `y` in 0..K-1.

    accuracy and macro_f1 (mean over classes present in labels or predictions, as sklearn) of
    argmax(P); auroc_macro and auroc_weighted: one-vs-rest AUROC of each class's column, mean
    or support-weighted mean over the classes that have both positives and negatives (sklearn
    requires every class present); kappa and kappa_linear of argmax vs label."""
    what = "multiclass metrics"
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] < 2:
        raise DataError(f"{what}: 'score' must hold one list of K >= 2 probabilities per row")
    n, K = P.shape
    y = np.asarray(y)
    if y.shape != (n,):
        raise DataError(f"{what}: {y.shape[0] if y.ndim else 0} labels for {n} score rows")
    yf = y.astype(np.float64)
    bad = ~np.isfinite(yf) | (yf != np.round(yf)) | (yf < 0) | (yf >= K)
    if bad.any():
        raise DataError(f"{what}: 'label' must be a class index 0..{K - 1} (row {_first(bad)})")
    y = yf.astype(np.int64)
    bad = ~np.isfinite(P).all(axis=1)
    if bad.any():
        raise DataError(f"{what}: 'score' is missing or not finite at row {_first(bad)}")
    w = _weights(weights, n, what)
    wf = np.ones(n) if w is None else w.astype(np.float64)
    pred = P.argmax(axis=1)
    confusion = np.bincount(y * K + pred, weights=wf, minlength=K * K).reshape(K, K)
    tp, support, predicted = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    present = (support + predicted) > 0
    f1 = _div(2 * tp, support + predicted)
    aucs = np.array([_auroc(y == k, P[:, k], w)[0] for k in range(K)])
    defined = ~np.isnan(aucs)
    return {
        "accuracy": float(_div(tp.sum(), confusion.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "auroc_macro": float(aucs[defined].mean()) if defined.any() else float("nan"),
        "auroc_weighted": float(_div((aucs[defined] * support[defined]).sum(), support[defined].sum())),
        "kappa": cohen_kappa(y, pred, sample_weight=wf),
        "kappa_linear": cohen_kappa(y, pred, "linear", sample_weight=wf),
    }


# ---------------------------------------------------------------------------- multilabel

def multilabel(Y, P, names, weights=None) -> dict[str, float]:
    """AUROC of each label's column; NaN cells of `Y` (unknown labels) are left out.

    auroc_macro: mean over the labels that have both classes; auroc_micro: one AUROC over all
    known cells; auroc_weighted: mean weighted by each label's positives; `auroc[<name>]`."""
    what = "multilabel metrics"
    Y = np.asarray(Y, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if Y.ndim != 2 or Y.shape != P.shape:
        raise DataError(f"{what}: 'label' and 'score' must be lists of the same length per row")
    n, L = Y.shape
    names = list(names)
    if len(names) != L:
        raise DataError(f"{what}: {len(names)} label names for {L} labels per row")
    w = _weights(weights, n, what)
    known = ~np.isnan(Y) if w is None else ~np.isnan(Y) & (w > 0)[:, None]
    bad = known & (Y != 0) & (Y != 1)
    if bad.any():
        raise DataError(f"{what}: 'label' entries must be 0, 1 or null (row {int(np.argwhere(bad)[0][0])})")
    bad = known & ~np.isfinite(P)
    if bad.any():
        raise DataError(f"{what}: 'score' is missing or not finite at row {int(np.argwhere(bad)[0][0])}")
    cell_w = None if w is None else np.broadcast_to(w[:, None], Y.shape)
    aucs, positives = np.full(L, np.nan), np.zeros(L)
    for j in range(L):  # a loop over labels (25 phenotypes), each one vectorised over rows
        m = known[:, j]
        aucs[j], positives[j], _ = _auroc(Y[m, j] == 1, P[m, j], None if w is None else w[m])
    defined = ~np.isnan(aucs)
    micro, _, _ = _auroc(Y[known] == 1, P[known], None if cell_w is None else cell_w[known])
    out = {
        "auroc_macro": float(aucs[defined].mean()) if defined.any() else float("nan"),
        "auroc_micro": micro,
        "auroc_weighted": float(_div((aucs[defined] * positives[defined]).sum(), positives[defined].sum())),
    }
    out.update({f"auroc[{name}]": float(a) for name, a in zip(names, aucs)})
    return out


# ---------------------------------------------------------------------------- regression

def _average_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """1-based ranks, ties get their average rank; with integer weights, the ranks the rows
    would get if each were repeated `w` times."""
    uniq, inv = np.unique(x, return_inverse=True)
    mass = np.bincount(inv, weights=w, minlength=len(uniq))
    return (np.cumsum(mass) - mass + (mass + 1) / 2)[inv]


def _pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    W = w.sum()
    dx, dy = x - (w @ x) / W, y - (w @ y) / W
    return float(_div(w @ (dx * dy), np.sqrt((w @ (dx * dx)) * (w @ (dy * dy)))))


def regression(y, yhat, weights=None) -> dict[str, float]:
    """mse, mae, rmse, pearson, spearman (Pearson of average ranks) and r2 of predictions
    `yhat`. r2 is NaN when the labels are constant (sklearn returns 0 or 1 there)."""
    what = "regression metrics"
    y = check_scores(y, None, what, "label")
    yhat = check_scores(yhat, len(y), what)
    w = _weights(weights, len(y), what)
    w = np.ones(len(y)) if w is None else w.astype(np.float64)
    W = w.sum()
    if W == 0:
        return dict.fromkeys(REGRESSION, float("nan"))
    err = yhat - y
    sse = w @ (err * err)
    dy = y - (w @ y) / W
    mse = sse / W
    return {
        "mse": float(mse),
        "mae": float(w @ np.abs(err) / W),
        "rmse": float(np.sqrt(mse)),
        "pearson": _pearson(y, yhat, w),
        "spearman": _pearson(_average_ranks(y, w), _average_ranks(yhat, w), w),
        "r2": float(1.0 - _div(sse, w @ (dy * dy))),
    }


# ---------------------------------------------------------------------------- sequences

_SCHEMES = {"auto": "BIESLU", "iob2": "BI", "iobes": "BIES", "bilou": "BILU"}
_O, _B, _I, _E, _S = range(5)
_PREFIX = {"B": _B, "I": _I, "E": _E, "S": _S, "L": _E, "U": _S}  # BILOU's L = E, U = S


def _parse_tags(vocab: np.ndarray, scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct tag: prefix code, type code, and whether it is valid in the scheme."""
    allowed = _SCHEMES[scheme]
    prefix, types, valid = np.zeros(len(vocab), np.int8), [], np.ones(len(vocab), bool)
    for i, tag in enumerate(vocab.tolist()):  # distinct tags only: a few dozen
        if tag == "O":
            types.append("")
            continue
        ok = len(tag) >= 1 and tag[0] in allowed and (len(tag) == 1 or tag[1] == "-")
        valid[i] = ok
        prefix[i] = _PREFIX.get(tag[:1], _O)
        types.append(tag[2:] or "_")  # seqeval: a bare "B" has type "_"
    _, type_code = np.unique(np.array(types, dtype=object), return_inverse=True)
    return prefix, type_code.reshape(-1), valid


def _entities(prefix: np.ndarray, types: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(begin, end, type) of every entity, seqeval's default rules, vectorised over tokens.

    `prefix`/`types` are flat over all sentences with an "O" after each sentence, so no entity
    crosses a sentence. A chunk ends before token i and one starts at i by the tag pairs below;
    an I- or E- after O or after another type starts a new entity (conlleval)."""
    prev_p = np.r_[_O, prefix[:-1]]
    prev_t = np.r_[-1, types[:-1]]
    cur_in = np.isin(prefix, (_B, _S, _O))
    cur_cont = np.isin(prefix, (_I, _E))
    new_type = prev_t != types
    end = (np.isin(prev_p, (_E, _S)) | (np.isin(prev_p, (_B, _I)) & cur_in)
           | ((prev_p != _O) & new_type))
    start = (np.isin(prefix, (_B, _S)) | (np.isin(prev_p, (_E, _S, _O)) & cur_cont)
             | ((prefix != _O) & new_type))
    stop = np.flatnonzero(end) - 1  # the chunk ends on the token before
    starts = np.flatnonzero(start)
    begin = starts[np.searchsorted(starts, stop, side="right") - 1]
    return begin, stop, types[stop]


def _same_entities(gold, pred) -> np.ndarray:
    """Which gold entities the prediction has exactly. Entities of one tagging never overlap,
    so their first tokens are distinct and sorted: match on the first token, then compare."""
    (gb, ge, gt), (pb, pe, pt) = gold, pred
    if len(pb) == 0:
        return np.zeros(len(gb), bool)
    at = np.minimum(np.searchsorted(pb, gb), len(pb) - 1)
    return (pb[at] == gb) & (pe[at] == ge) & (pt[at] == gt)


def sequence(gold, pred, scheme: str = "auto", weights=None) -> dict[str, float]:
    """Entity-level and token-level scores of predicted tag sequences.

    entity_precision/recall/f1: exact-match entities (same type, first and last token) as in
    seqeval's default mode, for IOB2 and also IOBES (E-/S-) and BILOU (L-/U-) tags; `scheme`
    "auto" accepts any of them, "iob2", "iobes" or "bilou" reject tags outside that scheme.
    token_f1 counts tokens whose gold or predicted tag is not "O": a token is a true positive
    when its gold tag is not O and the predicted tag is the same string (so B-X vs I-X is
    wrong); precision is over tokens predicted not-O, recall over tokens gold not-O.
    token_accuracy: the share of all tokens whose tags are equal, O included.
    `weights`: one per sentence."""
    what = "sequence metrics"
    if scheme not in _SCHEMES:
        raise UsageError(f"scheme must be one of {', '.join(_SCHEMES)}, not {scheme!r}")
    if len(gold) != len(pred):
        raise DataError(f"{what}: {len(gold)} gold and {len(pred)} predicted sequences")
    lengths = np.fromiter(map(len, gold), np.int64, len(gold))
    bad = lengths != np.fromiter(map(len, pred), np.int64, len(pred))
    if bad.any():
        raise DataError(f"{what}: 'label' and 'prediction' differ in length at row {_first(bad)}")
    w = _weights(weights, len(gold), what)
    w = np.ones(len(gold)) if w is None else w.astype(np.float64)
    if lengths.sum() == 0:
        return dict.fromkeys(SEQUENCE, float("nan"))
    # Flat tags with an "O" after every sentence, gold and predicted through one vocabulary.
    sep = [["O"]] * len(gold)
    flat_gold = list(chain.from_iterable(chain.from_iterable(zip(gold, sep))))
    flat_pred = list(chain.from_iterable(chain.from_iterable(zip(pred, sep))))
    vocab, codes = np.unique(np.array(flat_gold + flat_pred, dtype=object).astype(str), return_inverse=True)
    prefix, type_code, valid = _parse_tags(vocab, scheme)
    T = len(flat_gold)
    g_code, p_code = codes[:T], codes[T:]
    if not valid.all():
        bad = ~valid[codes]
        row = int(np.searchsorted(np.cumsum(lengths + 1), _first(bad) % T, side="right"))
        raise DataError(f"{what}: tag at row {row} is not a {scheme} tag (O, or B-/I-/E-/S-/L-/U- + type)")
    is_token = np.ones(T, bool)
    is_token[np.cumsum(lengths + 1) - 1] = False
    token_w = np.zeros(T)
    token_w[is_token] = np.repeat(w, lengths)
    sentence_of = np.repeat(np.arange(len(gold)), lengths + 1)

    gold_ents = _entities(prefix[g_code], type_code[g_code])
    pred_ents = _entities(prefix[p_code], type_code[p_code])
    gw, pw = w[sentence_of[gold_ents[0]]], w[sentence_of[pred_ents[0]]]
    matched = gw[_same_entities(gold_ents, pred_ents)].sum()
    n_gold, n_pred = gw.sum(), pw.sum()
    o = np.searchsorted(vocab, "O")
    has_o = o < len(vocab) and vocab[o] == "O"
    g_not_o = g_code != o if has_o else np.ones(T, bool)
    p_not_o = p_code != o if has_o else np.ones(T, bool)
    same = g_code == p_code
    tok_tp = token_w @ (same & g_not_o)
    return {
        "entity_f1": float(_div(2 * matched, n_gold + n_pred)),
        "entity_precision": float(_div(matched, n_pred)),
        "entity_recall": float(_div(matched, n_gold)),
        "token_f1": float(_div(2 * tok_tp, token_w @ g_not_o + token_w @ p_not_o)),
        "token_accuracy": float(_div(token_w @ same, token_w.sum())),
    }


# ---------------------------------------------------------------------------- length of stay

def los_buckets(days) -> np.ndarray:
    """The MIMIC-III benchmark's 10 length-of-stay classes (0..9) for stays in days:
    <1, 1-2, 2-3, ..., 7-8, 8-14, >=14; each bucket includes its lower edge."""
    d = np.asarray(days, dtype=np.float64)
    bad = np.isnan(d)
    if bad.any():
        raise DataError(f"length of stay is missing at row {int(np.argwhere(bad)[0][0])}")
    return np.searchsorted(LOS_EDGES_DAYS, d, side="right").astype(np.int64)
