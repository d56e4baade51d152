"""ehrkit.eval.metrics and .aggregate against sklearn/scipy (the oracles) and hand cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ehrkit.errors import DataError, UsageError
from ehrkit.eval import aggregate, metrics

sk = pytest.importorskip("sklearn.metrics")


def _close(a, b, tol=1e-9):
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tol


def _sklearn_binary(y, p, threshold=0.5) -> dict[str, float]:
    """What the source works compute, with sklearn, on plain (repeated) rows."""
    out = {"brier": sk.brier_score_loss(y, p), "prevalence": float(np.mean(y))}
    pred = (p >= threshold).astype(int)
    out["accuracy"] = sk.accuracy_score(y, pred)
    if pred.any():
        out["precision"] = sk.precision_score(y, pred)
    if y.any():
        out["recall"] = sk.recall_score(y, pred)
    if y.any() or pred.any():
        out["f1"] = sk.f1_score(y, pred)
    if 0 < y.sum() < len(y):
        out["auroc"] = sk.roc_auc_score(y, p)
        out["balanced_accuracy"] = sk.balanced_accuracy_score(y, pred)
        precision, recall, thresholds = sk.precision_recall_curve(y, p)
        out["auprc_trapezoid"] = sk.auc(recall, precision)
        out["average_precision"] = sk.average_precision_score(y, p)
        out["min_precision_sensitivity"] = max(min(a, b) for a, b in zip(precision, recall))
        # ClinicalBERT: rows of the curve by increasing threshold, first with precision > 0.8.
        rows = [r for pr, r, _ in zip(precision, recall, thresholds) if pr > 0.799999]
        out["rp80"] = rows[0] if rows else 0.0
    return out


def test_binary_matches_sklearn_with_ties_and_weights():
    rng = np.random.default_rng(0)
    for trial in range(120):
        n = int(rng.integers(2, 80))
        y = (rng.random(n) < rng.uniform(0.05, 0.9)).astype(int)
        p = np.round(rng.random(n) * 0.6 + 0.3 * y, int(rng.integers(1, 4)))  # ties
        w = rng.integers(0, 4, n) if trial % 2 else None
        yy, pp = (y, p) if w is None else (np.repeat(y, w), np.repeat(p, w))
        if not len(yy):
            continue
        threshold = float(rng.choice([0.5, 0.35, p[0]]))  # also a threshold equal to a score
        ours = metrics.binary(y, p, threshold=threshold, weights=w)
        assert set(ours) == set(metrics.BINARY)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = _sklearn_binary(yy, pp, threshold)
        for name, value in ref.items():
            assert _close(ours[name], value), (name, trial, ours[name], value)


def test_binary_weights_equal_repeated_rows_for_every_metric():
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.3).astype(int)
    p = np.round(rng.random(200), 2)
    w = rng.integers(0, 5, 200)
    ours = metrics.binary(y, p, weights=w)
    repeated = metrics.binary(np.repeat(y, w), np.repeat(p, w))
    for name in metrics.BINARY:
        assert _close(ours[name], repeated[name], 1e-12), name


def test_binary_one_class_is_nan_not_zero():
    only_neg = metrics.binary([0, 0, 0], [0.1, 0.7, 0.4])
    for name in ("auroc", "auprc_trapezoid", "average_precision", "rp80", "min_precision_sensitivity",
                 "recall", "balanced_accuracy"):
        assert np.isnan(only_neg[name]), name
    assert only_neg["accuracy"] == pytest.approx(2 / 3)
    only_pos = metrics.binary([1, 1], [0.2, 0.9])
    assert np.isnan(only_pos["auroc"]) and only_pos["auprc_trapezoid"] == 1.0
    assert np.isnan(metrics.binary([0, 1], [0.1, 0.2])["precision"])  # nothing predicted positive


def test_rp80_and_min_precision_sensitivity_by_hand():
    # By decreasing score: precision 1, 1, 2/3, 3/4, 3/5, 1/2 at recall 1/3, 2/3, 2/3, 1, 1, 1.
    y, p = [1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    m = metrics.binary(y, p)
    assert m["rp80"] == pytest.approx(2 / 3)  # the lowest threshold with precision > 0.8
    assert m["min_precision_sensitivity"] == pytest.approx(0.75)
    # Precision exactly 4/5 passes ClinicalBERT's "> 0.799999".
    assert metrics.binary([1, 0, 1, 1, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4])["rp80"] == 1.0
    # No row reaches 0.8 (sklearn's appended recall-0 point is not a row): 0.
    assert metrics.binary([0, 1], [0.9, 0.1])["rp80"] == 0.0


def test_ece_and_threshold_by_hand():
    m = metrics.binary([0, 1, 1, 1], [0.05, 0.05, 0.95, 0.95])
    assert m["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    assert metrics.binary([1, 0], [0.5, 0.2])["recall"] == 1.0  # score == threshold is positive
    assert metrics.binary([1, 1], [1.0, 1.0])["ece"] == pytest.approx(0.0)  # p = 1 is in the last bin


def test_binary_errors_name_rows_not_values():
    with pytest.raises(DataError, match="row 2") as e:
        metrics.binary([0, 1, 7], [0.1, 0.2, 0.3])
    assert "7" not in str(e.value)
    with pytest.raises(DataError, match="row 1"):
        metrics.binary([0, 1], [0.1, float("nan")])
    with pytest.raises(UsageError):
        metrics.binary_from_groups(np.array([0.5]), np.array([[1]]), np.array([[1]]), names=["auc"])


def _dirichlet_scores(rng, y, K):
    P = rng.dirichlet(np.ones(K), len(y))
    P[np.arange(len(y)), y] += rng.random(len(y)) * 0.5
    P = np.round(P / P.sum(axis=1, keepdims=True), 2)
    return P / P.sum(axis=1, keepdims=True)


def test_multiclass_matches_sklearn_and_weights():
    rng = np.random.default_rng(2)
    for trial in range(30):
        K = int(rng.integers(3, 6))
        n = int(rng.integers(K, 90))
        y = rng.integers(0, K, n)
        y[:K] = np.arange(K)  # sklearn's one-vs-rest needs every class present
        P = _dirichlet_scores(rng, y, K)
        w = None
        if trial % 2:
            w = rng.integers(0, 3, n)
            w[:K] = 1
        yy, PP = (y, P) if w is None else (np.repeat(y, w), np.repeat(P, w, axis=0))
        ours = metrics.multiclass(y, P, weights=w)
        pred = PP.argmax(axis=1)
        ref = {"accuracy": sk.accuracy_score(yy, pred),
               "macro_f1": sk.f1_score(yy, pred, average="macro"),
               "auroc_macro": sk.roc_auc_score(yy, PP, multi_class="ovr", average="macro"),
               "auroc_weighted": sk.roc_auc_score(yy, PP, multi_class="ovr", average="weighted"),
               "kappa": sk.cohen_kappa_score(yy, pred),
               "kappa_linear": sk.cohen_kappa_score(yy, pred, weights="linear")}
        for name, value in ref.items():
            assert _close(ours[name], value), (name, trial)


def test_cohen_kappa_matches_sklearn_with_absent_labels():
    a = np.array([0, 2, 5, 5, 2, 0, 9, 3])
    b = np.array([2, 2, 5, 0, 2, 0, 5, 3])
    for scheme in (None, "linear", "quadratic"):
        assert metrics.cohen_kappa(a, b, scheme) == pytest.approx(sk.cohen_kappa_score(a, b, weights=scheme))
    assert np.isnan(metrics.cohen_kappa([1, 1], [1, 1]))


def test_multilabel_matches_sklearn_and_skips_unknown_cells():
    rng = np.random.default_rng(3)
    Y = (rng.random((80, 4)) < 0.4).astype(float)
    P = np.round(rng.random((80, 4)) * 0.6 + 0.3 * Y, 2)
    names = ["a", "b", "c", "d"]
    ours = metrics.multilabel(Y, P, names)
    assert ours["auroc_macro"] == pytest.approx(sk.roc_auc_score(Y, P, average="macro"))
    assert ours["auroc_micro"] == pytest.approx(sk.roc_auc_score(Y, P, average="micro"))
    assert ours["auroc_weighted"] == pytest.approx(sk.roc_auc_score(Y, P, average="weighted"))
    for j, name in enumerate(names):
        assert ours[f"auroc[{name}]"] == pytest.approx(sk.roc_auc_score(Y[:, j], P[:, j]))
    # Unknown cells are left out; a label with one known class is NaN and out of the averages.
    Y2 = Y.copy()
    Y2[::3, 0] = np.nan
    Y2[:, 3] = np.where(Y[:, 3] == 1, np.nan, 0)
    two = metrics.multilabel(Y2, P, names)
    known = ~np.isnan(Y2[:, 0])
    assert two["auroc[a]"] == pytest.approx(sk.roc_auc_score(Y2[known, 0], P[known, 0]))
    assert np.isnan(two["auroc[d]"])
    assert two["auroc_macro"] == pytest.approx(np.mean([two[f"auroc[{k}]"] for k in "abc"]))
    cells = ~np.isnan(Y2)
    assert two["auroc_micro"] == pytest.approx(sk.roc_auc_score(Y2[cells], P[cells]))
    with pytest.raises(DataError):
        metrics.multilabel(Y, P, names[:3])


def test_regression_matches_sklearn_scipy_and_weights():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    for trial in range(20):
        y = np.round(rng.normal(size=60), 1)  # ties for the ranks
        yhat = np.round(y + rng.normal(size=60), 1)
        w = rng.integers(0, 3, 60) if trial % 2 else None
        yy, hh = (y, yhat) if w is None else (np.repeat(y, w), np.repeat(yhat, w))
        ours = metrics.regression(y, yhat, weights=w)
        ref = {"mse": sk.mean_squared_error(yy, hh), "mae": sk.mean_absolute_error(yy, hh),
               "rmse": np.sqrt(sk.mean_squared_error(yy, hh)), "r2": sk.r2_score(yy, hh),
               "pearson": stats.pearsonr(yy, hh)[0], "spearman": stats.spearmanr(yy, hh)[0]}
        for name, value in ref.items():
            assert _close(ours[name], value), (name, trial)
    constant = metrics.regression([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert np.isnan(constant["r2"]) and np.isnan(constant["pearson"])


def test_sequence_iob2_by_hand():
    m = metrics.sequence([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-ORG"]])
    assert (m["entity_precision"], m["entity_recall"], m["entity_f1"]) == (0.5, 0.5, 0.5)
    # An I- after O starts an entity (conlleval), so these two taggings agree.
    assert metrics.sequence([["O", "I-PER", "I-PER"]], [["O", "B-PER", "I-PER"]])["entity_f1"] == 1.0
    # An I- of another type starts a new entity: gold has PER(0) and LOC(1), pred has PER(0-1).
    m = metrics.sequence([["B-PER", "I-LOC"]], [["B-PER", "I-PER"]])
    assert (m["entity_precision"], m["entity_recall"]) == (0.0, 0.0)
    # Tokens: gold not-O = 4, predicted not-O = 4, equal and not O = 2 (I-PER vs B-PER differ).
    m = metrics.sequence([["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]],
                         [["B-PER", "B-PER", "B-LOC", "O", "I-LOC"]])
    assert m["token_f1"] == pytest.approx(2 * 2 / (4 + 4))
    assert m["token_accuracy"] == pytest.approx(2 / 5)
    # Entities never cross sentences.
    assert metrics.sequence([["B-X"], ["I-X"]], [["B-X"], ["I-X"]])["entity_recall"] == 1.0


def test_sequence_bilou_and_iobes_by_hand():
    gold = [["U-PER", "O", "B-LOC", "I-LOC", "L-LOC"]]
    pred = [["U-PER", "O", "B-LOC", "L-LOC", "O"]]  # PER right; LOC ends one token early
    m = metrics.sequence(gold, pred)
    assert (m["entity_precision"], m["entity_recall"]) == (0.5, 0.5)
    iobes = metrics.sequence([["S-PER", "O", "B-LOC", "I-LOC", "E-LOC"]],
                             [["S-PER", "O", "B-LOC", "E-LOC", "O"]], scheme="iobes")
    assert iobes["entity_f1"] == 0.5
    # An E- closes the entity: "E-X I-X" is two entities, "S-X S-X" too.
    m = metrics.sequence([["B-X", "E-X", "I-X"]], [["B-X", "I-X", "I-X"]])
    assert (m["entity_precision"], m["entity_recall"]) == (0.0, 0.0)
    with pytest.raises(DataError, match="row 1"):
        metrics.sequence([["O"], ["B-X", "L-X"]], [["O"], ["B-X", "I-X"]], scheme="iob2")
    with pytest.raises(DataError, match="row 0"):
        metrics.sequence([["O", "O"]], [["O"]])
    with pytest.raises(UsageError):
        metrics.sequence([["O"]], [["O"]], scheme="iob1")


def test_sequence_matches_seqeval_on_random_tags():
    seqeval = pytest.importorskip("seqeval.metrics")
    rng = np.random.default_rng(5)
    tags = ["O"] + [f"{p}-{t}" for p in "BIES" for t in ("A", "B")] + ["B", "I"]
    for _ in range(150):
        lengths = rng.integers(0, 8, int(rng.integers(1, 5)))
        gold = [[tags[i] for i in rng.integers(0, len(tags), k)] for k in lengths]
        pred = [[tags[i] for i in rng.integers(0, len(tags), k)] for k in lengths]
        ours = metrics.sequence(gold, pred)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not np.isnan(ours["entity_precision"]):
                assert ours["entity_precision"] == pytest.approx(seqeval.precision_score(gold, pred))
            if not np.isnan(ours["entity_recall"]):
                assert ours["entity_recall"] == pytest.approx(seqeval.recall_score(gold, pred))
            if not np.isnan(ours["entity_f1"]):
                assert ours["entity_f1"] == pytest.approx(seqeval.f1_score(gold, pred))


def test_sequence_weights_equal_repeated_sentences():
    gold = [["B-A", "I-A", "O"], ["B-B", "O"], ["O", "B-A"]]
    pred = [["B-A", "I-A", "O"], ["B-A", "O"], ["O", "O"]]
    w = np.array([2, 0, 3])
    repeated = [s for s, k in zip(gold, w) for _ in range(k)], [s for s, k in zip(pred, w) for _ in range(k)]
    assert metrics.sequence(gold, pred, weights=w) == pytest.approx(metrics.sequence(*repeated))


def test_los_buckets():
    days = [0.0, 0.99, 1.0, 1.99, 7.9, 8.0, 13.9, 14.0, 30.0]
    assert metrics.los_buckets(days).tolist() == [0, 0, 1, 1, 7, 8, 8, 9, 9]


def test_clinicalbert_aggregation_oracle():
    keys, scores, labels = aggregate.clinicalbert(["a", "a", "b"], [0.9, 0.1, 0.3], [1, 1, 0])
    assert keys.tolist() == ["a", "b"]
    assert scores == pytest.approx([0.70, (0.3 + 0.3 / 2) / 1.5])
    assert labels.tolist() == [1, 0]
    keys, scores, labels = aggregate.mean([7, 7, 3], [0.9, 0.1, 0.3], [1, 0, 0])
    assert keys.tolist() == [3, 7] and scores == pytest.approx([0.3, 0.5]) and labels.tolist() == [0, 0]
    assert aggregate.max([7, 7, 3], [0.9, 0.1, 0.3], [1, 1, 0])[1] == pytest.approx([0.3, 0.9])
    assert aggregate.aggregate([1, 1], [0.9, 0.1], [1, 1], how="clinicalbert")[1] == pytest.approx([0.7])
    with pytest.raises(UsageError):
        aggregate.aggregate([1], [0.5], [1], how="median")


def test_every_function_returns_the_documented_names():
    assert tuple(metrics.multiclass([0, 1, 2], np.eye(3))) == metrics.MULTICLASS
    assert tuple(metrics.regression([1.0, 2.0], [1.0, 3.0])) == metrics.REGRESSION
    assert tuple(metrics.sequence([["B-X"]], [["B-X"]])) == metrics.SEQUENCE
    assert tuple(metrics.sequence([[]], [[]])) == metrics.SEQUENCE
    assert tuple(metrics.multilabel([[0, 1], [1, 0]], [[0.2, 0.8], [0.7, 0.1]], ["a", "b"])) == \
        metrics.MULTILABEL + ("auroc[a]", "auroc[b]")
