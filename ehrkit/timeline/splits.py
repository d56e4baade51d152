"""Patient-level splits: no patient's timelines are in two splits (MEDS split names)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ehrkit.errors import DataError, UsageError

SPLITS = ("train", "tuning", "held_out")


def parse_fractions(text: str) -> tuple[float, float, float]:
    """'0.7,0.1,0.2' -> (0.7, 0.1, 0.2); they must be three non-negative numbers summing to 1."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise UsageError(f"--split-fractions '{text}' is not three numbers like 0.7,0.1,0.2") from None
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-6:
        raise UsageError(f"--split-fractions '{text}' must be three fractions that sum to 1")
    return parts  # type: ignore[return-value]


def by_first_admission(timelines: pl.DataFrame, fractions=(0.7, 0.1, 0.2)) -> pl.DataFrame:
    """patient_id -> split: patients ordered by their first start (then id), the first 70%
    train, the next 10% tuning, the rest held_out, as the FMs-for-EHRs source does."""
    patients = (timelines.group_by("patient_id").agg(pl.col("start").min())
                .sort("start", "patient_id"))
    n = patients.height
    position = pl.int_range(0, pl.len()) / max(n, 1)
    train_end, tuning_end = fractions[0], fractions[0] + fractions[1]
    return patients.select("patient_id", pl.when(position < train_end).then(pl.lit(SPLITS[0]))
                           .when(position < tuning_end).then(pl.lit(SPLITS[1]))
                           .otherwise(pl.lit(SPLITS[2])).alias("split"))


def from_file(path: str | Path) -> pl.DataFrame:
    """A MEDS subject_splits file (subject_id, split), or any records with patient_id and
    split, such as the timelines of an earlier run (one row per patient is kept)."""
    from ehrkit.io import read_table

    frame = pl.from_arrow(read_table([str(path)]))
    if "subject_id" in frame.columns and "patient_id" not in frame.columns:
        frame = frame.rename({"subject_id": "patient_id"})
    for column in ("patient_id", "split"):
        if column not in frame.columns:
            raise DataError(f"{path}: splits file needs fields patient_id (or subject_id) and "
                            f"split; fields present: {', '.join(frame.columns)}")
    frame = frame.select(pl.col("patient_id").cast(pl.String), pl.col("split").cast(pl.String)) \
        .unique(maintain_order=True)
    if frame["patient_id"].is_duplicated().any():  # e.g. timelines of one patient, two splits
        raise DataError(f"{path}: some patients have more than one split",
                        hint="splits must be patient-level")
    return frame
