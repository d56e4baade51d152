"""`ehrkit timeline`: structured EHR data (CLIF, MEDS) as token timelines and hourly series."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from ehrkit.cli.options import Output, Quiet, ToFormat, Verbose, fmt, setup

app = typer.Typer(help="Token timelines and hourly series from CLIF or MEDS data.",
                  no_args_is_help=True)


class SourceKind(str, Enum):
    clif = "clif"
    meds = "meds"


class Quantizer(str, Enum):
    deciles = "deciles"
    ventiles = "ventiles"
    centiles = "centiles"


@app.command("tokenize")
def tokenize(
    source: Annotated[str, typer.Argument(help="A CLIF directory (clif_<table>.parquet) or a "
                                          "MEDS dataset directory.", metavar="SOURCE")],
    output: Output = "-",
    to: ToFormat = None,
    fit: Annotated[Optional[str], typer.Option(
        "--fit", help="Fit the vocabulary on the training split and save it here (JSON).",
        metavar="VOCAB")] = None,
    vocab: Annotated[Optional[str], typer.Option(
        "--vocab", help="Apply a saved vocabulary; nothing is refitted.", metavar="VOCAB")] = None,
    split: Annotated[bool, typer.Option(
        "--split", help="Assign train/tuning/held_out by patient, in order of first "
        "admission.")] = False,
    split_fractions: Annotated[str, typer.Option(
        "--split-fractions", help="Fractions for --split.")] = "0.7,0.1,0.2",
    splits_file: Annotated[Optional[str], typer.Option(
        "--splits-file", help="Splits from records with patient_id (or subject_id) and split, "
        "e.g. MEDS metadata/subject_splits.parquet.", metavar="PATH")] = None,
    fit_all: Annotated[bool, typer.Option(
        "--fit-all", help="Fit the vocabulary on every timeline, not only the training "
        "split (leaks held-out data into the bins).")] = False,
    cut: Annotated[Optional[str], typer.Option(
        "--cut", help="Keep only the first part of each timeline, e.g. 24h; timelines that "
        "end inside the window are dropped.", metavar="DURATION")] = None,
    keep_short: Annotated[bool, typer.Option(
        "--keep-short", help="With --cut, keep timelines that end inside the window.")] = False,
    max_length: Annotated[Optional[int], typer.Option(
        "--max-length", min=2, help="Truncate longer timelines, ending them with TRUNC.")] = None,
    pad: Annotated[bool, typer.Option(
        "--pad", help="Right-pad every timeline to --max-length with PAD.")] = False,
    quantizer: Annotated[Quantizer, typer.Option(
        "--quantizer", help="Bins for numeric values (with --fit).")] = Quantizer.deciles,
    discrete_max: Annotated[int, typer.Option(
        "--discrete-max", min=0, help="Codes with at most this many distinct values get one "
        "bin per value (with --fit; 0: off).")] = 0,
    fused: Annotated[bool, typer.Option(
        "--fused", help="One token per code and bin, like LAB_potassium_Q3 (with --fit).")] = False,
    time_tokens: Annotated[bool, typer.Option(
        "--time-tokens", help="Insert time-gap tokens between events (with --fit).")] = False,
    with_tokens: Annotated[bool, typer.Option(
        "--with-tokens", help="Also write the token strings.")] = False,
    source_kind: Annotated[Optional[SourceKind], typer.Option(
        "--source", help="Source kind (default: detected from the directory).",
        show_default=False)] = None,
    labels: Annotated[Optional[str], typer.Option(
        "--labels", help="MEDS: a label file (subject_id, prediction_time, values); one "
        "timeline per row, events after the prediction time excluded.", metavar="PATH")] = None,
    timezone: Annotated[str, typer.Option(
        "--timezone", help="MEDS: the time zone of its naive times.")] = "UTC",
    timeline_field: Annotated[Optional[str], typer.Option(
        "--timeline-field", help="MEDS: one timeline per value of this field (e.g. "
        "hospitalization_id) instead of per subject.", metavar="FIELD")] = None,
    group_size: Annotated[int, typer.Option(
        "--group-size", min=1, help="Timelines processed at a time: bounds memory.")] = 5000,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Turn CLIF or MEDS data into integer token timelines with outcome labels.

    Reads a CLIF 2.x directory (one timeline per hospitalization) or a MEDS dataset (one per
    subject). Writes sequence records: the id (hospitalization_id or subject_id), patient_id,
    split, input_ids, times, length, and the outcomes same_admission_death,
    long_length_of_stay (over 168 h), icu_admission and imv_event (each with a _24h flag for
    events in the first 24 hours), always computed on the full stay. Numeric values become
    quantile tokens whose cut points are fitted on the training split only (--fit) and stored
    in a versioned JSON vocabulary that --vocab applies unchanged to other data.

    Examples:

      ehrkit timeline tokenize clif/ --split --fit vocab.json -o timelines.parquet

      ehrkit timeline tokenize clif/ --split --vocab vocab.json --cut 24h -o first24h.parquet

      ehrkit timeline tokenize other-hospital/ --vocab vocab.json --max-length 1024 --pad -o t.parquet

      ehrkit timeline tokenize meds/ --fit vocab.json --labels labels.parquet -o t.parquet
    """
    setup(quiet, verbose)
    from ehrkit.errors import UsageError

    if (fit is None) == (vocab is None):
        raise UsageError("give exactly one of --fit VOCAB (learn the vocabulary) and --vocab "
                         "VOCAB (apply a saved one)")
    if pad and max_length is None:
        raise UsageError("--pad needs --max-length")
    from ehrkit.timeline.commands import MedsOptions, SplitConfig, run_tokenize
    from ehrkit.timeline.splits import parse_fractions
    from ehrkit.timeline.tokenize import TokenizeConfig, parse_duration
    from ehrkit.timeline.vocab import VocabSettings

    run_tokenize(
        source, output, fmt(to), kind=source_kind.value if source_kind else None,
        vocab_in=vocab, vocab_out=fit,
        settings=VocabSettings(quantizer.value, discrete_max, fused, time_tokens),
        split=SplitConfig(split, parse_fractions(split_fractions), splits_file, fit_all),
        config=TokenizeConfig(cut=parse_duration(cut) if cut else None, keep_short=keep_short,
                              max_length=max_length, pad=pad, with_tokens=with_tokens),
        group_size=group_size, meds=MedsOptions(labels, timezone, timeline_field))


from ehrkit.cli.timeline_series import register as _register_series  # noqa: E402

_register_series(app)
