"""`ehrkit notes cohort`: ClinicalBERT's 30-day readmission cohort from MIMIC-style tables.

`register(app)` adds the command to the `notes` group."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from ehrkit.cli.options import (FromFormat, Inputs, Output, Quiet, Seed, ToFormat, Verbose, fmt,
                                opt, setup)


class NoteSetup(str, Enum):
    discharge = "discharge"
    early_2d = "early-2d"
    early_3d = "early-3d"


class SplitBy(str, Enum):
    patient = "patient"
    admission = "admission"


class StayFilter(str, Enum):
    all = "all"
    held_out = "held-out"
    none = "none"


def cohort(
    paths: Inputs = None,
    admissions: Annotated[str, opt(
        "--admissions", help="The admissions table: MIMIC-III ADMISSIONS or MIMIC-IV admissions "
        "(.csv, .csv.gz, JSONL or Parquet; field names in any case).", metavar="PATH")] = ...,
    readmission: Annotated[bool, opt(
        "--readmission", help="Build the 30-day readmission cohort (required: the only cohort "
        "so far).")] = False,
    notes: Annotated[NoteSetup, opt(
        "--notes", help="Which notes: the last discharge summary of each admission, or every "
        "note of the first 2 or 3 days.")] = NoteSetup.discharge,
    admissions_only: Annotated[bool, opt(
        "--admissions-only", help="One record per admission (ids, label, split); reads notes "
        "only when note files are given (then: admissions that have the setup's notes).")] = False,
    concat: Annotated[bool, opt(
        "--concat", help="One record per admission: its notes joined by single spaces in chart "
        "order, as ClinicalBERT feeds early notes to chunking.")] = False,
    split_by: Annotated[SplitBy, opt(
        "--split-by", help="patient keeps each patient in one split; admission is ClinicalBERT's "
        "split (a patient can be in train and held_out).")] = SplitBy.patient,
    split_fractions: Annotated[str, opt(
        "--split-fractions", help="train,tuning,held_out fractions (stratified by label).")
    ] = "0.8,0.1,0.1",
    balance: Annotated[bool, opt(
        "--balance", help="Downsample the training negatives to the number of training "
        "positives, as ClinicalBERT does.")] = False,
    still_in_hospital: Annotated[StayFilter, opt(
        "--still-in-hospital", help="Early notes: drop stays shorter than the window from all "
        "splits, from held_out only (ClinicalBERT), or none.")] = StayFilter.all,
    elective: Annotated[str, opt(
        "--elective-types", help="Admission types that do not count as readmissions "
        "(comma-separated).")] = "ELECTIVE,SURGICAL SAME DAY ADMISSION",
    seed: Seed = 0,
    output: Output = "-",
    from_: FromFormat = None,
    to: ToFormat = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Label admissions for 30-day readmission (ClinicalBERT) and pick their notes.

    Reads an admissions table (--admissions) and note records (NOTEEVENTS or MIMIC-IV
    discharge notes: subject_id, hadm_id, text, category or note_type, charttime/chartdate).
    Label 1: the next non-elective admission starts within 30 days of this discharge. NEWBORN
    admissions and those with a death time are excluded. Writes the notes with `label` (int8)
    and `split` (train, tuning, held_out), or one record per admission. Reads all admissions
    into memory and streams the notes, keeping only the ones selected. Summary on stderr.

    Examples:

      ehrkit notes cohort --admissions ADMISSIONS.csv.gz NOTEEVENTS.csv.gz --readmission -o discharge.parquet

      ehrkit notes cohort --admissions adm.parquet notes.parquet --readmission --notes early-3d --balance

      ehrkit notes cohort --admissions admissions.csv.gz --readmission --admissions-only -o cohort.jsonl
    """
    setup(quiet, verbose)
    from ehrkit.errors import UsageError
    from ehrkit.notes.cohort import CohortConfig, run_cohort
    from ehrkit.timeline.splits import parse_fractions

    if not readmission:
        raise UsageError("name the cohort to build: --readmission (30-day readmission)")
    if concat and admissions_only:
        raise UsageError("--concat and --admissions-only exclude each other")
    types = tuple(t.strip().upper() for t in elective.split(",") if t.strip())
    config = CohortConfig(notes=notes.value, admissions_only=admissions_only, concat=concat,
                          split_by=split_by.value, fractions=parse_fractions(split_fractions),
                          seed=seed, balance=balance, still_in_hospital=still_in_hospital.value,
                          elective=types)
    note_paths = list(paths) if paths else (None if admissions_only else ["-"])
    run_cohort(admissions, note_paths, output, fmt(from_), fmt(to), config)


def register(app: typer.Typer) -> None:
    """Add `cohort` to the `notes` group."""
    app.command("cohort")(cohort)
