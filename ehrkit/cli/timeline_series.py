"""`ehrkit timeline series`: the hourly grid (MIMIC-III benchmark discretiser) for the GRU work.

`register(app)` adds the command to the `timeline` group."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, List, Optional

import typer

from ehrkit.cli.options import Output, Quiet, ToFormat, Verbose, fmt, setup


class SourceKind(str, Enum):
    clif = "clif"
    physionet = "physionet"


class Impute(str, Enum):
    previous = "previous"
    normal = "normal"
    zero = "zero"
    none = "none"


class Start(str, Enum):
    admission = "admission"
    icu = "icu"


def series(
    source: Annotated[str, typer.Argument(
        help="A CLIF directory (clif_*.parquet), or PhysioNet 2019 .psv files: a directory, a "
        ".tar.gz of them or one file.", metavar="SOURCE", show_default=False)],
    output: Output = "-",
    to: ToFormat = None,
    kind: Annotated[Optional[SourceKind], typer.Option(
        "--source", help="Source type (default: from what SOURCE holds).",
        show_default=False)] = None,
    hours: Annotated[int, typer.Option("--hours", min=1, help="Hourly bins per stay (T).")] = 48,
    variables: Annotated[Optional[List[str]], typer.Option(
        "--variables", help="Variables, comma-separated or repeated: benchmark names ('Heart "
        "Rate'), 'benchmark' (all 17), CLIF TABLE:CATEGORY (labs:lactate) or PhysioNet columns "
        "(HR); NAME=VALUE sets the normal value. Default: the 17 benchmark variables (CLIF), "
        "the 34 physiological columns (PhysioNet).", metavar="LIST", show_default=False)] = None,
    impute: Annotated[Impute, typer.Option(
        "--impute", help="Gaps: previous (carry forward, normal value before the first), "
        "normal, zero, or none (null).")] = Impute.previous,
    one_hot: Annotated[bool, typer.Option(
        "--one-hot/--no-one-hot", help="One column per category for GCS and capillary refill "
        "(--no-one-hot: their ordinal values).")] = True,
    start: Annotated[Start, typer.Option(
        "--start", help="CLIF time zero: admission_dttm, or the first ICU in_dttm (stays "
        "without ICU are skipped).")] = Start.admission,
    fit_normalizer: Annotated[Optional[str], typer.Option(
        "--fit-normalizer", help="Fit means and stds of the continuous columns on the training "
        "stays, apply them, and save them as JSON here (reads SOURCE twice).", metavar="PATH",
        show_default=False)] = None,
    normalizer: Annotated[Optional[str], typer.Option(
        "--normalizer", help="Apply a saved normaliser (no refitting).", metavar="PATH",
        show_default=False)] = None,
    split_field: Annotated[str, typer.Option(
        "--split-field", help="CLIF hospitalization field naming each stay's split; the "
        "normaliser is fitted where it is 'train'.")] = "split",
    train_ids: Annotated[Optional[str], typer.Option(
        "--train-ids", help="File of stay or patient ids, one per line, to fit the normaliser "
        "on (instead of the split field).", metavar="FILE", show_default=False)] = None,
    splits_file: Annotated[Optional[str], typer.Option(
        "--splits-file", help="Splits from records with patient_id (or subject_id) and split, "
        "e.g. MEDS metadata/subject_splits.parquet: written to the split field and used to fit "
        "the normaliser.", metavar="PATH", show_default=False)] = None,
    derive_labels: Annotated[bool, typer.Option(
        "--derive-labels", help="Add 'derived' (list<int8>): per stay, 0/1 for about 20 "
        "derangements (tachycardia HR > 100, hypotension MAP < 65, lactate > 2, ...) in the raw "
        "values at ANY time of the whole stay, after hour T too: multi-label pretraining targets. "
        "Labels whose variable the source lacks are left out; the names are in the Parquet "
        "metadata key ehrkit.label_names and on stderr with their prevalences.")] = False,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=0, help="Only the first N stays.", show_default=False)] = None,
    group_size: Annotated[int, typer.Option(
        "--group-size", min=1, help="Stays processed together; bounds memory.")] = 1000,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Hourly ICU series: T bins x variables, imputed, masked, one-hot and normalised.

    Reads a CLIF 2.x directory (hospitalizations; vitals, labs, patient_assessments,
    respiratory_support) or PhysioNet 2019 .psv files, and writes one series record per stay:
    stay_id, patient_id, hours, values (T x C float32), mask (T x V int8, 1 = observed, one
    column per variable), length (bins before the stay ended), and labels (CLIF: mortality and
    the split field; PhysioNet: sepsis; with --derive-labels, derived). As the MIMIC-III
    benchmark: the last value in each hour wins, categorical variables become one-hot columns
    (NAME->CATEGORY), and the normaliser is fitted on training stays only and saved as JSON,
    never pickled. Memory is bounded by --group-size.

    Examples:

      ehrkit synth clif -n 500 -o clif/ && ehrkit timeline series clif/ -o series.parquet

      ehrkit timeline series clif/ --splits-file splits.parquet --fit-normalizer stats.json \\
          -o series.parquet

      ehrkit timeline series other-hospital/ --normalizer stats.json -o external.parquet

      ehrkit timeline series training_setB.tar.gz --variables HR,O2Sat,MAP --impute none | head -n 1

      ehrkit timeline series training_setB.tar.gz --derive-labels -o series.parquet && \
          ehrkit pretrain series.parquet --objective multilabel --labels derived -o gru-run
    """
    setup(quiet, verbose)
    from ehrkit.timeline.series import SeriesConfig, write_series

    config = SeriesConfig(source=kind.value if kind else None, hours=hours, variables=variables,
                          impute=impute.value, one_hot=one_hot, start=start.value,
                          split_field=split_field, train_ids=train_ids, splits_file=splits_file,
                          group_size=group_size, limit=limit, derive_labels=derive_labels)
    write_series(source, output, fmt(to), config, fit=fit_normalizer, normalizer=normalizer)


def register(app: typer.Typer) -> None:
    """Add `series` to the `timeline` group."""
    app.command("series")(series)
