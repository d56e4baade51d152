"""`ehrkit evaluate`: metrics with bootstrap intervals from prediction records."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, List, Optional


from ehrkit.cli.options import (FromFormat, Inputs, Output, Quiet, Seed, ToFormat, Verbose, fmt, inputs,
                                opt, setup)


class Task(str, Enum):
    auto = "auto"
    binary = "binary"
    multiclass = "multiclass"
    multilabel = "multilabel"
    regression = "regression"
    sequence = "sequence"


class Aggregation(str, Enum):
    clinicalbert = "clinicalbert"
    mean = "mean"
    max = "max"



def evaluate(
    paths: Inputs = None,
    output: Output = "-",
    from_: FromFormat = None,
    to: ToFormat = None,
    task: Annotated[Task, opt("--task", help="auto: from the field types (see below).")] = Task.auto,
    label_field: Annotated[str, opt("--label-field", help="The true label.")] = "label",
    score_field: Annotated[str, opt("--score-field", help="The predicted probability, "
                                     "probabilities or value.")] = "score",
    prediction_field: Annotated[str, opt("--prediction-field", help="sequence: the predicted "
                                          "tags.")] = "prediction",
    name: Annotated[Optional[str], opt("--name", help="The task name in the metric records "
                                        "(default: the label field).", show_default=False)] = None,
    threshold: Annotated[float, opt("--threshold", help="binary: scores at or above it are "
                                     "positive (accuracy, F1, ...).")] = 0.5,
    bootstrap: Annotated[int, opt("--bootstrap", min=0, help="Resamples for the intervals "
                                   "(0: none; the MIMIC-III benchmark uses 10000).")] = 1000,
    confidence: Annotated[float, opt("--confidence", help="Interval coverage.")] = 0.95,
    patient_field: Annotated[Optional[str], opt("--patient-field", help="Resample patients, "
                                                 "not rows: a patient's rows move together.",
                                                 show_default=False)] = None,
    by: Annotated[Optional[List[str]], opt("--by", help="Also report each value of this field "
                                            "(repeatable), e.g. --by sex.", show_default=False)] = None,
    aggregate: Annotated[Optional[Aggregation], opt(
        "--aggregate", help="Combine chunk scores per --group-by first; clinicalbert: "
        "(P_max + P_mean n/c) / (1 + n/c).", show_default=False)] = None,
    group_by: Annotated[Optional[List[str]], opt("--group-by", help="The fields of one group "
                                                  "(e.g. hadm_id).", show_default=False)] = None,
    scale: Annotated[float, opt("--scale", min=0.0, help="clinicalbert: the scaling "
                                 "factor c.")] = 2.0,
    compare: Annotated[Optional[List[str]], opt("--compare", help="Predictions of another "
                                                 "model on the same rows: paired difference "
                                                 "(b - a) with its interval.", metavar="FILE",
                                                 show_default=False)] = None,
    on: Annotated[Optional[List[str]], opt("--on", help="--compare: the id fields that match "
                                            "rows (default: row order).", show_default=False)] = None,
    los_buckets: Annotated[bool, opt("--los-buckets", help="regression on stay lengths in days: "
                                      "also Cohen's kappa (linear) on the benchmark's 10 "
                                      "buckets.")] = False,
    plots: Annotated[Optional[str], opt("--plots", help="Write ROC, precision-recall and "
                                         "calibration PNGs here.", metavar="DIR",
                                         show_default=False)] = None,
    seed: Seed = 0,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Metrics with bootstrap confidence intervals from prediction records.

    Reads prediction records (from probe, predict or finetune; any file with a label and a
    score) and writes metric records (task, metric, value, ci_low, ci_high, n, unit, subgroup,
    source), with a readable table on stderr. The task follows from the fields: a 0/1 label
    and a probability is binary (AUROC; AUPRC as the trapezoid of the PR curve, as ClinicalBERT
    and the MIMIC-III benchmark compute it, and as average precision; RP80; min(precision,
    sensitivity); Brier; calibration error; accuracy, F1, balanced accuracy at --threshold);
    a class index and a list of probabilities is multiclass; a list of labels and a list of
    scores is multi-label (macro, micro, weighted and per-label AUROC); other numbers are
    regression (MSE, MAE, Pearson, Spearman); tag lists with a `prediction` field are sequence
    labelling (entity-level F1 as seqeval counts it, token-level F1). Reads everything first.

    Examples:

      ehrkit evaluate preds.jsonl --patient-field patient_id --bootstrap 10000

      ehrkit evaluate chunks.jsonl --aggregate clinicalbert --group-by hadm_id --plots plots/

      ehrkit evaluate new.jsonl --compare old.jsonl --on hospitalization_id --by sex -o metrics.jsonl
    """
    setup(quiet, verbose)
    from pathlib import Path

    from ehrkit.eval.evaluate import EvaluateRequest, run_evaluate
    from ehrkit.eval.predictions import Fields
    from ehrkit.eval.report import metric_table, print_table
    from ehrkit.io import RecordWriter

    req = EvaluateRequest(
        inputs(paths), fmt(from_), Fields(label_field, score_field, prediction_field), task.value,
        name, threshold, bootstrap, confidence, seed, patient_field, list(by or []),
        aggregate.value if aggregate else None, list(group_by or []), scale,
        list(compare) if compare else None, list(on or []), los_buckets,
        Path(plots) if plots else None)
    records = run_evaluate(req)
    table = metric_table(records)
    with RecordWriter(output, fmt(to), table.schema) as writer:
        writer.write(table)
    print_table(records, confidence)
