"""ehrkit.eval.bootstrap: determinism, clusters, and the fast binary path against the plain loop."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from ehrkit.errors import UsageError
from ehrkit.eval import bootstrap, metrics

CURVE = ("auroc", "auprc_trapezoid", "average_precision", "rp80", "min_precision_sensitivity")


def _data(n=300, seed=0, decimals=3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    p = np.round(rng.random(n) * 0.6 + 0.3 * y, decimals)
    q = np.round(rng.random(n) * 0.5 + 0.4 * y, decimals)
    return y, p, q


def test_resample_counts_deterministic_by_seed():
    a = list(bootstrap.resample_counts(50, 5, seed=3))
    b = list(bootstrap.resample_counts(50, 5, seed=3))
    c = list(bootstrap.resample_counts(50, 5, seed=4))
    assert all(np.array_equal(x, z) for x, z in zip(a, b))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c))
    assert all(x.sum() == 50 and x.dtype.kind == "i" for x in a)


def test_cluster_resampling_moves_a_clusters_rows_together():
    clusters = np.array(["p1", "p1", "p1", "p2", "p3", "p3", "p4", "p5"])
    for counts in bootstrap.resample_counts(len(clusters), 20, seed=0, clusters=clusters):
        for c in np.unique(clusters):
            assert len(set(counts[clusters == c].tolist())) == 1  # every row of a patient alike
        per_cluster = [counts[clusters == c][0] for c in np.unique(clusters)]
        assert sum(per_cluster) == 5  # as many draws as patients


def test_fast_binary_equals_generic_loop_over_the_same_counts():
    y, p, q = _data()
    clusters = np.random.default_rng(1).integers(0, 60, len(y))
    for cl in (None, clusters):
        for names in (metrics.BINARY, tuple(m for m in metrics.BINARY if m not in ("brier", "ece"))):
            fast = bootstrap.bootstrap_binary(y, p, 40, seed=7, clusters=cl, metrics=names,
                                              method="rows", threshold=0.45)
            slow = bootstrap.bootstrap_generic(functools.partial(metrics.binary, threshold=0.45),
                                               [y, p], 40, seed=7, clusters=cl)
            for name in names:
                np.testing.assert_allclose(fast[name], slow[name], rtol=0, atol=1e-12, err_msg=name)


def test_paired_resamples_are_the_same_rows():
    y, p, q = _data()
    a, b = bootstrap.bootstrap_binary(y, p, 30, seed=2, p_other=q, metrics=CURVE, method="rows")
    alone = bootstrap.bootstrap_binary(y, p, 30, seed=2, metrics=CURVE, method="rows")
    slow_q = bootstrap.bootstrap_generic(metrics.binary, [y, q], 30, seed=2)
    for name in CURVE:
        np.testing.assert_allclose(a[name], alone[name], atol=1e-12)
        np.testing.assert_allclose(b[name], slow_q[name], atol=1e-12)


def test_generic_by_index_equals_by_weights():
    y, p, _ = _data(80)
    by_w = bootstrap.bootstrap_generic(metrics.binary, [y, p], 10, seed=1)
    by_i = bootstrap.bootstrap_generic(lambda a, b: metrics.binary(a, b), [y, p], 10, seed=1)
    for name in metrics.BINARY:
        np.testing.assert_allclose(by_w[name], by_i[name], atol=1e-12, err_msg=name)
    seqs = bootstrap.bootstrap_generic(metrics.sequence, [[["B-X", "O"], ["O"], ["B-Y"]]] * 2, 5, seed=0)
    assert set(seqs) >= {"entity_f1", "token_f1"}


def test_cell_draws_have_the_row_draws_distribution():
    # Cell counts drawn directly are Multinomial(n, cell size / n), the distribution of summed
    # row draws: same means and spreads within Monte Carlo error, not the same numbers.
    y, p, q = _data(3000, seed=3, decimals=2)
    cells = bootstrap.bootstrap_binary(y, p, 600, seed=0, method="cells", metrics=metrics.BINARY)
    rows = bootstrap.bootstrap_binary(y, p, 600, seed=0, method="rows", metrics=metrics.BINARY)
    for name in metrics.BINARY:
        sd = np.std(rows[name])
        assert abs(np.mean(cells[name]) - np.mean(rows[name])) < 0.2 * sd, name
        assert 0.85 < np.std(cells[name]) / sd < 1.15, name
    a, b = bootstrap.bootstrap_binary(y, p, 600, seed=0, p_other=q, method="cells")
    ra, rb = bootstrap.bootstrap_binary(y, p, 600, seed=0, p_other=q, method="rows")
    assert 0.85 < np.std(b["auroc"] - a["auroc"]) / np.std(rb["auroc"] - ra["auroc"]) < 1.15


def test_bootstrap_centres_on_and_covers_the_point_value():
    y, p, _ = _data(2000, seed=4)
    point = metrics.binary(y, p)
    for method in ("rows", "cells"):
        samples = bootstrap.bootstrap_binary(y, p, 300, seed=1, method=method, metrics=CURVE)
        for name in CURVE:
            low, high = bootstrap.interval(samples[name])
            assert low <= point[name] <= high, (method, name)
            assert abs(np.mean(samples[name]) - point[name]) < 0.5 * np.std(samples[name]), name


def test_threads_and_blocks_do_not_change_results():
    y, p, _ = _data()
    one = bootstrap.bootstrap_binary(y, p, 25, seed=9, threads=1)
    two = bootstrap.bootstrap_binary(y, p, 25, seed=9, threads=2)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


def test_interval_is_nan_aware():
    assert bootstrap.interval([np.nan, 1.0, 2.0, 3.0], 0.5) == pytest.approx((1.5, 2.5))
    low, high = bootstrap.interval([np.nan, np.nan])
    assert np.isnan(low) and np.isnan(high)
    with pytest.raises(UsageError):
        bootstrap.interval([1.0], confidence=95)


def test_one_class_resamples_are_nan_and_bad_options_are_usage_errors():
    out = bootstrap.bootstrap_binary([0, 0, 1], [0.1, 0.2, 0.3], 200, seed=0)
    assert np.isnan(out["auroc"]).any() and not np.isnan(out["auroc"]).all()
    with pytest.raises(UsageError):
        bootstrap.bootstrap_binary([0, 1], [0.1, 0.2], 2, clusters=[1, 2], method="cells")
    with pytest.raises(UsageError):
        bootstrap.bootstrap_binary([0, 1], [0.1, 0.2], 2, metrics=("auc",))
