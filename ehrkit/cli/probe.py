"""`ehrkit probe`: linear probes on embeddings, their predictions, outliers and learning curves."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, List, Optional


from ehrkit.cli.options import (opt, FromFormat, Inputs, Output, Quiet, Seed, ToFormat, Verbose, fmt,
                                inputs, setup)


class Task(str, Enum):
    auto = "auto"
    binary = "binary"
    multiclass = "multiclass"
    multilabel = "multilabel"
    regression = "regression"


class Predict(str, Enum):
    held_out = "held_out"
    all = "all"


class Model(str, Enum):
    auto = "auto"
    logistic = "logistic"
    ridge = "ridge"


class Penalty(str, Enum):
    l2 = "l2"
    l1 = "l1"



def _numbers(text: Optional[str], kind, flag: str) -> Optional[list]:
    """'1e-3,0.1,1' -> [0.001, 0.1, 1.0]; a bad item is a usage error."""
    if text is None:
        return None
    from ehrkit.errors import UsageError

    try:
        return [kind(float(item)) if kind is int and float(item).is_integer() else kind(item)
                for item in text.split(",") if item.strip()]
    except ValueError:
        raise UsageError(f"{flag}: cannot read '{text}' as comma-separated numbers") from None


def probe(
    paths: Inputs = None,
    output: Output = "-",
    from_: FromFormat = None,
    to: ToFormat = None,
    label_field: Annotated[Optional[List[str]], opt(
        "--label-field", help="Label to predict; repeat it (or separate with commas) for "
        "several, or name a list field (phenotypes, phenotypes[:20]): one probe per label.",
        metavar="FIELD", show_default=False)] = None,
    feature_field: Annotated[str, opt("--feature-field", help="The embedding field.")] = "embedding",
    task: Annotated[Task, opt("--task", help="auto: 2 values binary, >20 distinct numbers "
                               "regression, else multiclass; several labels multilabel.")] = Task.auto,
    positive: Annotated[Optional[str], opt(
        "--positive", help="Binary: the positive value (default: the larger of the two in "
        "sorted order, e.g. 1, true, 'yes').", metavar="VALUE", show_default=False)] = None,
    split_field: Annotated[str, opt("--split-field", help="Field naming each row's split: "
                                     "train fits, tuning (val) chooses C, held_out (test) is "
                                     "predicted.")] = "split",
    val_fraction: Annotated[float, opt("--val-fraction", min=0.0, max=0.9, help="Without a "
                                        "split field: share of rows (or groups) for tuning.")] = 0.15,
    test_fraction: Annotated[float, opt("--test-fraction", min=0.0, max=0.9, help="Without a "
                                         "split field: share for held_out.")] = 0.2,
    group_field: Annotated[Optional[str], opt(
        "--group-field", help="Without a split field: keep rows with the same value (e.g. "
        "patient_id) in one split.", metavar="FIELD", show_default=False)] = None,
    predict: Annotated[Predict, opt("--predict", help="Rows to write: held_out, or all (with "
                                     "their split). --load without a split field scores every "
                                     "row.")] = Predict.held_out,
    model: Annotated[Model, opt("--model", help="auto: logistic regression for classes, "
                                 "ridge for regression targets.")] = Model.auto,
    penalty: Annotated[Penalty, opt("--penalty", help="l2, or l1 (sparse weights; Gupta et "
                                     "al.).")] = Penalty.l2,
    c_grid: Annotated[Optional[str], opt(
        "--C", help="Inverse regularisation strengths, comma-separated, chosen on the tuning "
        "rows; one value skips the search. Default 1e-5,1e-4,...,100 (l1: 0.001 to 1).", metavar="LIST",
        show_default=False)] = None,
    save: Annotated[Optional[str], opt("--save", help="Save the fitted probe as JSON.",
                                        metavar="PATH", show_default=False)] = None,
    load: Annotated[Optional[str], opt("--load", help="Apply a saved probe (no fitting).",
                                        metavar="PATH", show_default=False)] = None,
    outliers: Annotated[bool, opt("--outliers", help="Add outlier_score and outlier from an "
                                   "IsolationForest fitted on the training rows.")] = False,
    train_fraction: Annotated[Optional[str], opt(
        "--train-fraction", help="Learning curve over shares of the training rows, e.g. "
        "0.01,0.1,0.5,1 (writes metric records).", metavar="LIST", show_default=False)] = None,
    shots: Annotated[Optional[str], opt(
        "--shots", help="Few-shot curve: k rows of each class, e.g. 1,2,4,8,16 (writes metric "
        "records).", metavar="LIST", show_default=False)] = None,
    replicates: Annotated[int, opt("--replicates", min=1, help="Draws per curve point.")] = 5,
    seed: Seed = 0,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Fit linear probes on embeddings; write predictions, or learning-curve metrics.

    Reads every embedding record first (from `ehrkit embed`: an `embedding` list field, labels,
    optionally a split field), fills missing feature values with training-row means,
    standardises with training-row statistics, fits logistic regression (ridge for regression)
    on the train rows for each C of the grid, keeps the C that scores best on the tuning rows
    (AUROC; multiclass log-loss; R^2) without refitting on train + tuning, and writes
    prediction records for the held_out rows: the input fields, `label`, `score` and `split`.
    Per label it reports on stderr the chosen C, the tuning and held-out metrics and the share
    of zero weights. --save writes the probe as JSON (weights, scaler, classes, settings; never
    a pickle); --load applies one. --train-fraction and --shots write metric records (auroc,
    auprc_trapezoid per label, fraction or shots, replicate) instead, with a mean +- sd table.

    Examples:

      ehrkit probe emb.parquet --label-field mortality --save probe.json -o preds.jsonl

      ehrkit probe emb.parquet --label-field 'phenotypes[20:]' --penalty l1 --group-field patient_id

      ehrkit probe new.parquet --load probe.json --outliers --predict all -o scored.parquet

      ehrkit probe emb.parquet --label-field mortality --shots 1,2,4,8,16 --replicates 5 -o curve.jsonl
    """
    setup(quiet, verbose)
    from ehrkit.probe import CurveSettings, FitSettings, ProbeRequest, run_probe
    from ehrkit.probe.fit import default_grid

    labels = [s.strip() for spec in label_field or [] for s in spec.split(",") if s.strip()]
    fit = FitSettings(penalty=penalty.value, grid=_numbers(c_grid, float, "--C") or
                      default_grid(penalty.value), seed=seed)
    curves = CurveSettings(_numbers(train_fraction, float, "--train-fraction"),
                           _numbers(shots, int, "--shots"), replicates)
    run_probe(ProbeRequest(
        inputs(paths), fmt=fmt(from_), output=output, to=fmt(to), feature_field=feature_field,
        label_fields=labels, task=task.value, positive=positive, split_field=split_field,
        val_fraction=val_fraction, test_fraction=test_fraction, group_field=group_field,
        predict=predict.value, model=model.value, fit=fit, save=save, load=load,
        outliers=outliers, curves=curves))
