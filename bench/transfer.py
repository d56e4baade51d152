"""Gupta et al.'s transfer protocol on synthetic ICU series, end to end through the CLI.

A GRU is pretrained multi-label on 20 of the 25 phenotypes (the source tasks); its hidden
states (all layers at the last hour, z_tau) feed L1 logistic regressions for the 5 held-out
phenotypes and for mortality (the target tasks, whose labels the GRU never saw), across
shrinking shares of the labelled training stays. The baseline is the MIMIC-III benchmark's
logistic regression (L2, C chosen on the same tuning rows) on 714 hand-crafted statistics
(6 statistics x 7 sub-windows x 17 variables). Both probes see the same stays, splits (by
patient) and training draws; the table gives held-out AUROC, mean (sd) over the replicates.

    python bench/transfer.py                   # 3000 stays, GRU 2 x 300 (a few minutes on a CPU)
    python bench/transfer.py --n 800 --hidden 32 --epochs 3 --replicates 2   # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

TARGETS = "phenotypes[20:],mortality"


def ehrkit(*args: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ehrkit", *args], cwd=cwd, capture_output=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr.decode())
        raise SystemExit(f"ehrkit {args[0]} failed (exit {done.returncode})")


def run(work: Path, a: argparse.Namespace) -> dict:
    fractions = a.fractions
    ehrkit("synth", "series", "-n", str(a.n), "--seed", str(a.seed), "-o", "series.parquet", cwd=work)
    ehrkit("pretrain", "series.parquet", "--objective", "multilabel", "--labels", "phenotypes[:20]",
           "--hidden", str(a.hidden), "--layers", "2", "--epochs", str(a.epochs), "--batch-size", "64",
           "--lr", "2e-3", "--eval-every", "50", "--seed", str(a.seed), "-q", "-o", "gru", cwd=work)
    ehrkit("embed", "series.parquet", "-m", "gru", "--pool", "layers", "-q", "-o", "gru.parquet", cwd=work)
    ehrkit("embed", "series.parquet", "--handcrafted", "-q", "-o", "stats.parquet", cwd=work)
    curves = {}
    for name, features, penalty in (("gru", "gru.parquet", "l1"), ("handcrafted", "stats.parquet", "l2")):
        ehrkit("probe", features, "--label-field", TARGETS, "--penalty", penalty,
               "--group-field", "patient_id", "--train-fraction", fractions,
               "--replicates", str(a.replicates), "--seed", str(a.seed), "-q",
               "-o", f"curve-{name}.jsonl", cwd=work)
        curves[name] = [json.loads(line) for line in (work / f"curve-{name}.jsonl").open()]
    return curves


def table(curves: dict) -> list[str]:
    cells = defaultdict(list)
    for name, records in curves.items():
        for r in records:
            if r["metric"] == "auroc" and r["value"] is not None:
                cells[(r["task"], r["train_fraction"], name)].append(r["value"])
    tasks = sorted({k[0] for k in cells}, key=lambda t: (t == "mortality", t))
    fractions = sorted({k[1] for k in cells})
    lines = [f"{'task':<16} {'fraction':>8}  {'GRU z (L1)':>14}  {'hand-crafted':>14}  {'delta':>7}"]
    for task in tasks:
        for f in fractions:
            gru, hand = cells.get((task, f, "gru"), []), cells.get((task, f, "handcrafted"), [])
            if gru and hand:
                lines.append(f"{task:<16} {f:>8g}  {_ms(gru):>14}  {_ms(hand):>14}  "
                             f"{np.mean(gru) - np.mean(hand):>+7.3f}")
    return lines


def _ms(values: list) -> str:
    return f"{np.mean(values):.3f} ({np.std(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="synthetic stays")
    parser.add_argument("--hidden", type=int, default=300, help="GRU hidden size (Gupta et al.: 300)")
    parser.add_argument("--epochs", type=float, default=5)
    parser.add_argument("--fractions", default="0.02,0.05,0.1,0.25,0.5,1")
    parser.add_argument("--replicates", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", help="keep the intermediate files here")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        curves = run(work, a)
    print(f"transfer: {a.n} synthetic stays, GRU 2 x {a.hidden} pretrained on phenotypes 1-20, "
          f"{a.replicates} replicates; held-out AUROC, mean (sd)")
    print("\n".join(table(curves)))


if __name__ == "__main__":
    main()
