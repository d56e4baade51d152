"""Benchmark: ehrkit's bootstrap of binary metrics against a straightforward sklearn loop.

Both bootstrap AUROC, AUPRC (trapezoidal area under precision_recall_curve) and average
precision over the same synthetic predictions (seeded; prevalence ~0.1, AUROC ~0.8, scores
rounded to 4 decimals, so there are ties). The baseline is what a researcher would write, and
what the MIMIC-III benchmark's evaluation scripts do: per resample, draw row indices with numpy
and call roc_auc_score, precision_recall_curve + auc and average_precision_score. It is slow,
so it runs `--baseline-resamples` resamples and its time is extrapolated to `--resamples`.

Prints both times, the ratio (target: ehrkit >= 20x, and well under 15 s for 1,000 resamples of
1,000,000 rows), and both percentile intervals with whether they agree within Monte Carlo error.

    python bench/evaluate.py                              # 1,000,000 rows, 1,000 resamples
    python bench/evaluate.py --rows 100000 --baseline-resamples 20   # a quick look
    python bench/evaluate.py --decimals -1 --method rows  # continuous scores, row draws
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from statistics import NormalDist

import numpy as np

from ehrkit.eval.bootstrap import bootstrap_binary, interval
from ehrkit.eval.metrics import binary

METRICS = ("auroc", "auprc_trapezoid", "average_precision")


def make_predictions(rows: int, seed: int, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with prevalence 0.1 and probabilities whose AUROC is about 0.8 (binormal with
    separation sqrt(2) * z(0.8) = 1.19), squashed to (0, 1) and rounded to create ties."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.1).astype(np.int64)
    z = rng.normal(size=rows) + 1.19 * y
    p = 1.0 / (1.0 + np.exp(-(z - 2.4)))
    return y, (np.round(p, decimals) if decimals >= 0 else p)


def baseline(y: np.ndarray, p: np.ndarray, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """One sklearn call per metric per resample, on copied rows."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

    rng = np.random.default_rng(seed)
    out = {m: np.empty(resamples) for m in METRICS}
    n = len(y)
    for i in range(resamples):
        idx = rng.integers(0, n, n)
        yy, pp = y[idx], p[idx]
        out["auroc"][i] = roc_auc_score(yy, pp)
        precision, recall, _ = precision_recall_curve(yy, pp)
        out["auprc_trapezoid"][i] = auc(recall, precision)
        out["average_precision"][i] = average_precision_score(yy, pp)
    return out


def quantile_se(sd: float, q: float, resamples: int) -> float:
    """Monte Carlo standard error of a bootstrap percentile, normal approximation:
    sd * sqrt(q (1 - q) / B) / phi(z_q)."""
    normal = NormalDist()
    return sd * math.sqrt(q * (1 - q) / resamples) / normal.pdf(normal.inv_cdf(q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--baseline-resamples", type=int, default=50,
                        help="resamples the sklearn loop really runs; its time is extrapolated")
    parser.add_argument("--decimals", type=int, default=4, help="round scores (-1: do not)")
    parser.add_argument("--method", default="auto", choices=["auto", "rows", "cells"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    y, p = make_predictions(args.rows, args.seed, args.decimals)
    point = binary(y, p)
    print(f"data: {args.rows:,} rows, prevalence {point['prevalence']:.3f}, "
          f"{len(np.unique(p)):,} distinct scores, {os.cpu_count()} cores")
    print("point values (ehrkit): " + ", ".join(f"{m} {point[m]:.4f}" for m in METRICS))

    t = time.perf_counter()
    ours = bootstrap_binary(y, p, args.resamples, seed=args.seed, metrics=METRICS, method=args.method)
    ek_s = time.perf_counter() - t

    t = time.perf_counter()
    theirs = baseline(y, p, args.baseline_resamples, seed=args.seed + 1)
    base_per = (time.perf_counter() - t) / args.baseline_resamples
    base_s = base_per * args.resamples

    print(f"ehrkit bootstrap_binary ({args.method}), {args.resamples} resamples: {ek_s:.2f} s "
          f"({ek_s / args.resamples * 1e3:.1f} ms per resample)")
    print(f"baseline (numpy indices + 3 sklearn calls per resample): {base_per:.3f} s per resample, "
          f"measured over {args.baseline_resamples}; extrapolated to {args.resamples}: {base_s:.0f} s")
    print(f"ratio: {base_s / ek_s:.0f}x (target >= 20x)")

    print("95% percentile intervals; agree = each end differs by less than 3 Monte Carlo SEs, "
          "SE of a percentile = sd * sqrt(q(1-q)/B) / phi(z_q) per side, combined in quadrature")
    agree_all = True
    for m in METRICS:
        lo_e, hi_e = interval(ours[m])
        lo_b, hi_b = interval(theirs[m])
        sd = float(np.std(ours[m], ddof=1))
        se = math.hypot(quantile_se(sd, 0.025, args.resamples),
                        quantile_se(sd, 0.025, args.baseline_resamples))
        agree = abs(lo_e - lo_b) < 3 * se and abs(hi_e - hi_b) < 3 * se
        agree_all &= agree
        print(f"  {m:18s} ehrkit [{lo_e:.4f}, {hi_e:.4f}]  baseline [{lo_b:.4f}, {hi_b:.4f}]  "
              f"3 SE = {3 * se:.4f}  {'agree' if agree else 'DIFFER'}")
    print(f"intervals {'agree' if agree_all else 'differ'} within Monte Carlo error")


if __name__ == "__main__":
    sys.exit(main())
