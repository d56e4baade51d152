"""ClinicalBERT's 30-day readmission cohort: labels, note setups, splits and balancing.

The label follows `preprocess.py` of kexinhuang12345/clinicalBERT step for step (methods.md
1.1), on every admission of the file, before any exclusion:

1. admissions sorted by (subject_id, admittime), ties in input order, missing times last;
2. the next admission's time within the subject (a shift); where the next admission is
   elective, that time is blanked and back-filled from the later rows, so "next" means the
   next *non-elective* admission;
3. days_to_next = (that admittime - this dischtime) in seconds / 86400; label = 1 iff
   days_to_next < 30 (a same-day or overlapping readmission counts; no next admission is 0);
4. then NEWBORN admissions are dropped, then those with a deathtime. An admission followed
   by a death admission keeps its label: the readmission happened.

Elective means admission_type ELECTIVE (MIMIC-III's only planned type) or, in MIMIC-IV,
SURGICAL SAME DAY ADMISSION; URGENT, EW EMER., DIRECT EMER. and the observation types
(EU OBSERVATION, OBSERVATION ADMIT, DIRECT OBSERVATION, AMBULATORY OBSERVATION) are not
elective and count as readmissions. MIMIC-IV has no NEWBORN admissions.

Note setups (methods.md 1.2): `discharge` keeps the last discharge summary of each admission
(by chart date, then input order), and drops the admission when that one has no text.
`early-2d`/`early-3d` keep every note whose chart day (CHARTTIME's date, or CHARTDATE when
CHARTTIME is missing) minus the admission day is under 2 or 3 days. The "still in hospital"
filter drops admissions whose stay (dischtime - admittime) is shorter than the window: ClinicalBERT
applies it to the test set only; ehrkit applies it to every split by default, since a short
stay's early notes include its discharge summary.

Splits are drawn over the whole cohort, so every note setup of one seed shares them. Patient-
level by default (stratified by whether a patient has any positive admission); by admission
on request, as ClinicalBERT does (stratified by label). Balancing downsamples the training
negatives to the number of training positives, among the admissions that have notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ehrkit import log
from ehrkit.errors import DataError
from ehrkit.notes import mimic_tables as tables
from ehrkit.timeline.splits import SPLITS

KEYS = ["subject_id", "hadm_id"]
ADMISSION_FIELDS = ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime",
                    "admission_type"]
ELECTIVE = ("ELECTIVE", "SURGICAL SAME DAY ADMISSION")
NEWBORN = ("NEWBORN",)
WINDOWS = {"early-2d": 2, "early-3d": 3}
TMP = "__c_"  # prefix of internal fields, dropped before writing


@dataclass(frozen=True)
class CohortConfig:
    """What `notes cohort --readmission` builds.

    notes: discharge | early-2d | early-3d. still_in_hospital: all | held-out | none (early
    setups). split_by: patient | admission. fractions: train, tuning, held_out.
    """

    notes: str = "discharge"
    admissions_only: bool = False
    concat: bool = False
    split_by: str = "patient"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    balance: bool = False
    still_in_hospital: str = "all"
    elective: tuple[str, ...] = ELECTIVE

    @property
    def window(self) -> int | None:
        return WINDOWS.get(self.notes)


@dataclass
class CohortStats:
    admissions: int = 0
    newborn: int = 0
    death: int = 0
    cohort: int = 0
    cohort_positive: int = 0
    notes_read: int = 0
    notes_kept: int = 0
    short_stays: int = 0
    balanced_out: int = 0
    mixed_patients: int = 0
    splits: dict = field(default_factory=dict)  # split -> (positive, negative, notes)


# ----------------------------------------------------------------------------- labels

def prepare_admissions(frame: pl.DataFrame, source: str, shown: list[str]) -> pl.DataFrame:
    """Check the fields, parse the times, normalise the admission type (upper case)."""
    tables.require(frame, source, ADMISSION_FIELDS, shown)
    keyed = frame.filter(pl.col("subject_id").is_not_null() & pl.col("hadm_id").is_not_null())
    if keyed.height < frame.height:
        log.warn(f"{source}: {frame.height - keyed.height} admissions without subject_id or "
                 "hadm_id are left out")
    repeated = int(keyed.select(pl.struct(KEYS).is_duplicated().sum()).item())
    if repeated:
        raise DataError(f"{source}: {repeated} rows share their (subject_id, hadm_id) with another row",
                        hint="give each admission one row")
    frame = tables.parse_times(keyed, ["admittime", "dischtime", "deathtime"], source, TMP)
    kind = pl.col("admission_type").cast(pl.String).str.strip_chars().str.to_uppercase()
    return frame.with_columns(kind.alias(TMP + "type"))


def label_admissions(adm: pl.DataFrame, elective=ELECTIVE) -> pl.DataFrame:
    """Add days_to_next, label (int8) and duration (days) to prepared admissions, sorted by
    subject and admission time, exactly as ClinicalBERT computes them (module docstring)."""
    adm = adm.sort(["subject_id", TMP + "admittime"], nulls_last=True, maintain_order=True)
    next_elective = pl.col(TMP + "type").is_in(list(elective)).shift(-1).over("subject_id")
    next_time = pl.col(TMP + "admittime").shift(-1).over("subject_id")
    non_elective = pl.when(next_elective.fill_null(False)).then(None).otherwise(next_time)
    adm = adm.with_columns(non_elective.alias(TMP + "next"))
    adm = adm.with_columns(pl.col(TMP + "next").fill_null(strategy="backward").over("subject_id"))
    days = (pl.col(TMP + "next") - pl.col(TMP + "dischtime")).dt.total_microseconds() / 86_400e6
    stay = (pl.col(TMP + "dischtime") - pl.col(TMP + "admittime")).dt.total_microseconds() / 86_400e6
    return adm.with_columns(days.alias("days_to_next"),
                            (days < 30).fill_null(False).cast(pl.Int8).alias("label"),
                            stay.alias(TMP + "duration")).drop(TMP + "next")


def exclude(adm: pl.DataFrame, stats: CohortStats) -> pl.DataFrame:
    """Drop NEWBORN admissions, then those with a death time (ClinicalBERT's order)."""
    newborn = pl.col(TMP + "type").is_in(list(NEWBORN)).fill_null(False)
    stats.newborn = int(adm.select(newborn.sum()).item())
    adm = adm.filter(~newborn)
    stats.death = int(adm[TMP + "deathtime"].is_not_null().sum())
    adm = adm.filter(pl.col(TMP + "deathtime").is_null())
    stats.cohort, stats.cohort_positive = adm.height, int(adm["label"].sum())
    return adm


# ----------------------------------------------------------------------------- splits

def stratified_codes(strata: np.ndarray, fractions, seed: int) -> np.ndarray:
    """A split code (0 train, 1 tuning, 2 held_out) per unit: within each stratum a seeded
    permutation is cut at the rounded cumulative fractions.

    >>> stratified_codes(np.zeros(10, int), (0.8, 0.1, 0.1), 0).tolist().count(0)
    8
    """
    rng = np.random.default_rng(seed)
    codes = np.zeros(len(strata), np.int8)
    for value in np.unique(strata):  # one pass per stratum, not per unit
        members = np.flatnonzero(strata == value)
        members = members[rng.permutation(len(members))]
        ends = np.rint(np.cumsum(fractions) * len(members)).astype(np.int64)
        codes[members] = np.minimum(np.searchsorted(ends, np.arange(len(members)), "right"), 2)
    return codes


def assign_splits(cohort: pl.DataFrame, config: CohortConfig) -> pl.DataFrame:
    """The cohort with a `split` field, drawn over all of it (shared by every note setup)."""
    if config.split_by == "patient":
        units = cohort.group_by("subject_id").agg(pl.col("label").max().alias(TMP + "stratum"))
        on = ["subject_id"]
    else:
        units = cohort.select(*KEYS, pl.col("label").alias(TMP + "stratum"))
        on = KEYS
    units = units.sort(on)
    codes = stratified_codes(units[TMP + "stratum"].to_numpy(), config.fractions, config.seed)
    units = units.select(*on, pl.Series("split", np.array(SPLITS, dtype=object)[codes],
                                        dtype=pl.String))
    cohort = cohort.join(units, on=on, how="left", maintain_order="left")
    # a per-admission random key for --balance, fixed over the whole cohort so that setups
    # sharing admissions keep the same negatives
    order = cohort.select(pl.int_range(pl.len()).sort_by(KEYS).alias("i"))["i"].to_numpy()
    keys = np.empty(cohort.height)
    keys[order] = np.random.default_rng([config.seed, 1]).random(cohort.height)
    return cohort.with_columns(pl.Series(TMP + "key", keys))


def mixed_patients(units: pl.DataFrame) -> int:
    """Patients whose admissions are in more than one split."""
    return int(units.group_by("subject_id").agg(pl.col("split").n_unique())
               .filter(pl.col("split") > 1).height)


def balance_train(units: pl.DataFrame) -> pl.DataFrame:
    """Keep as many training negatives (lowest random keys) as there are training positives."""
    train = pl.col("split") == SPLITS[0]
    positives = units.filter(train & (pl.col("label") == 1)).height
    rank = pl.col(TMP + "key").rank("ordinal").over(["split", "label"])
    return units.filter(~train | (pl.col("label") == 1) | (rank <= positives))


def stay_filter(units: pl.DataFrame, config: CohortConfig) -> pl.DataFrame:
    """ClinicalBERT's "still in hospital" rule for early notes: stays of at least the window."""
    if config.window is None or config.still_in_hospital == "none":
        return units
    long_enough = (pl.col(TMP + "duration") >= config.window).fill_null(False)
    if config.still_in_hospital == "held-out":
        long_enough = long_enough | (pl.col("split") != SPLITS[2])
    return units.filter(long_enough)


# ----------------------------------------------------------------------------- notes

def _note_day(frame: pl.DataFrame, source: str) -> pl.Expr:
    """CHARTTIME's date, or CHARTDATE when CHARTTIME is missing."""
    days = [tables.datetime_expr(frame, n, source).dt.date() for n in ("charttime", "chartdate")
            if n in frame.columns]
    return pl.coalesce(days).alias(TMP + "day")


def select_batch(notes: pl.DataFrame, source: str, shown: list[str], keys: pl.DataFrame,
                 config: CohortConfig) -> pl.DataFrame:
    """One batch of notes joined to the cohort and filtered for the setup."""
    needed = [*KEYS, "text"] + (["category"] if config.window is None else [])
    tables.require(notes, source, needed, shown)
    if "charttime" not in notes.columns:
        tables.require(notes, source, ["chartdate"], shown)
    notes = notes.drop([c for c in ("label", "split") if c in notes.columns])
    notes = notes.with_columns([pl.col(k).cast(keys.schema[k], strict=False) for k in KEYS])
    notes = notes.with_columns(_note_day(notes, source))
    notes = notes.join(keys, on=KEYS, how="inner", maintain_order="left")
    if config.window is None:
        kind = pl.col("category").cast(pl.String).str.strip_chars().str.to_lowercase()
        return notes.filter(kind == "discharge summary")
    after = (pl.col(TMP + "day") - pl.col(TMP + "admit_day")).dt.total_days()
    return notes.filter((after < config.window).fill_null(False) & pl.col("text").is_not_null())


def read_notes(paths: list[str], fmt: str | None, keys: pl.DataFrame, config: CohortConfig,
               stats: CohortStats) -> pl.DataFrame:
    """Stream the note inputs; keep the setup's notes of cohort admissions."""
    kept, seen = [], 0
    for frame, source, shown in tables.note_frames(paths, fmt):
        frame = frame.with_columns(pl.int_range(seen, seen + frame.height, dtype=pl.Int64)
                                   .alias(TMP + "order"))
        seen += frame.height
        kept.append(select_batch(frame, source, shown, keys, config))
    stats.notes_read = seen
    if not kept:
        return pl.DataFrame(schema={**keys.schema, "text": pl.String, TMP + "day": pl.Date,
                                    TMP + "order": pl.Int64})
    notes = pl.concat(kept, how="diagonal_relaxed")
    notes = notes.sort([*KEYS, TMP + "day", TMP + "order"], nulls_last=True)
    if config.window is None:  # the last summary; the admission goes if it has no text
        notes = notes.unique(subset=KEYS, keep="last", maintain_order=True)
        notes = notes.filter(pl.col("text").is_not_null())
    return notes


def concatenate(notes: pl.DataFrame) -> pl.DataFrame:
    """One record per admission, its notes' texts joined by single spaces in chart order."""
    return notes.group_by(KEYS, maintain_order=True).agg(
        pl.col("text").str.join(" "), pl.len().cast(pl.Int32).alias("n_notes"))


# ----------------------------------------------------------------------------- the cohort

def build(admissions: pl.DataFrame, source: str, shown: list[str], notes_paths: list[str] | None,
          fmt: str | None, config: CohortConfig) -> tuple[pl.DataFrame, CohortStats]:
    """The cohort's records: notes with label and split, or one record per admission."""
    stats = CohortStats(admissions=admissions.height)
    adm = label_admissions(prepare_admissions(admissions, source, shown), config.elective)
    if adm.height and adm[TMP + "admittime"].is_null().all():
        raise DataError(f"{source}: no value of field 'admittime' is a date-time",
                        hint="dates must look like 2164-10-23 21:09:00")
    cohort = assign_splits(exclude(adm, stats), config)
    units = cohort.select(*KEYS, "label", "split", TMP + "duration", TMP + "key",
                          pl.col(TMP + "admittime").dt.date().alias(TMP + "admit_day"))
    notes = None
    if notes_paths is not None:
        notes = read_notes(notes_paths, fmt, units.select(*KEYS, TMP + "admit_day"), config, stats)
        units = units.join(notes.select(KEYS).unique(), on=KEYS, how="semi", maintain_order="left")
    before = units.height
    units = stay_filter(units, config)
    stats.short_stays = before - units.height
    if config.balance:
        before = units.height
        units = balance_train(units)
        stats.balanced_out = before - units.height
    stats.mixed_patients = mixed_patients(units)
    labels = units.select(*KEYS, "label", "split")
    if notes is not None:
        notes = notes.join(labels, on=KEYS, how="inner", maintain_order="left")
    _count(units, notes, stats)
    if notes is None or config.admissions_only:
        return labels.sort(KEYS), stats
    if config.concat:
        return concatenate(notes).join(labels, on=KEYS, maintain_order="left"), stats
    return notes.drop([c for c in notes.columns if c.startswith(TMP)]), stats


def _count(units: pl.DataFrame, notes: pl.DataFrame | None, stats: CohortStats) -> None:
    for split in SPLITS:
        part = units.filter(pl.col("split") == split)
        positive = int(part["label"].sum())
        kept = 0 if notes is None else notes.filter(pl.col("split") == split).height
        stats.splits[split] = (positive, part.height - positive, kept)
    stats.notes_kept = 0 if notes is None else notes.height


# ----------------------------------------------------------------------------- the command

def run_cohort(admissions_path: str, notes_paths: list[str] | None, output: str,
               fmt_in: str | None, fmt_out: str | None, config: CohortConfig) -> CohortStats:
    """Read, build, write (atomically), and summarise on stderr."""
    from ehrkit.io import RecordWriter

    timer = log.Timer()
    frame, shown = tables.read_admissions(admissions_path)
    records, stats = build(frame, admissions_path, shown, notes_paths, fmt_in, config)
    if config.split_by == "admission":
        log.warn(f"--split-by admission: {stats.mixed_patients} patients have admissions in more "
                 "than one split (ClinicalBERT's split), so held-out results are optimistic; "
                 "the default --split-by patient keeps each patient in one split")
    with RecordWriter(output, fmt_out, records.to_arrow().schema) as out:
        for start in range(0, records.height, 16_384):
            out.write(records.slice(start, 16_384))
    _summary(stats, config, notes_paths is not None, timer.seconds)
    return stats


def _summary(stats: CohortStats, config: CohortConfig, with_notes: bool, seconds: float) -> None:
    log.info(f"notes cohort: {stats.admissions} admissions read; excluded {stats.newborn} "
             f"newborn, {stats.death} with a death; {stats.cohort} in the cohort, "
             f"{stats.cohort_positive} readmitted within 30 days")
    if with_notes:
        log.info(f"notes {config.notes}: {stats.notes_kept} notes kept of {stats.notes_read} read")
    if stats.short_stays:
        where = "held_out" if config.still_in_hospital == "held-out" else "all splits"
        log.info(f"still in hospital: {stats.short_stays} stays shorter than {config.window} "
                 f"days dropped ({where})")
    if stats.balanced_out:
        log.info(f"balance: {stats.balanced_out} training negatives dropped")
    parts = []
    for split, (positive, negative, notes) in stats.splits.items():
        counted = f", {notes} notes" if with_notes and not config.admissions_only else ""
        parts.append(f"{split} {positive} positive / {negative} negative{counted}")
    log.info(f"split by {config.split_by} (seed {config.seed}): " + "; ".join(parts))
    log.detail(f"notes cohort: {seconds:.1f} s")
