"""MIMIC-III and MIMIC-IV admissions and note tables, read into one layout.

Field names are matched case-insensitively and lowercased (MIMIC-IV's spelling), so
`SUBJECT_ID` (MIMIC-III) and `subject_id` (MIMIC-IV) are the same field downstream. Besides
ehrkit's JSONL and Parquet, CSV is read (`.csv`, `.csv.gz`, as MIMIC ships it) with pyarrow's
streaming reader: every field as text, line breaks inside quoted values allowed (note text has
them), then the id fields cast to integers where every value is one.

MIMIC-IV's note tables have `note_type` instead of `category`: `DS` (discharge notes) becomes
`Discharge summary`, `RR` and `AR` (radiology reports, addenda) become `Radiology`.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Iterator, Sequence

import polars as pl
import pyarrow as pa

from ehrkit import log
from ehrkit.errors import DataError, InputFormatError, MissingFieldError

CSV_SUFFIXES = (".csv", ".csv.gz")
# Integer fields of the MIMIC tables: CSV gives them as text.
INTEGER_FIELDS = ("row_id", "subject_id", "hadm_id", "cgid", "iserror", "note_seq",
                  "hospital_expire_flag", "has_chartevents_data")
NOTE_TYPES = {"DS": "Discharge summary", "RR": "Radiology", "AR": "Radiology"}
# MIMIC writes "2164-10-23 21:09:00"; the others are what exports of it commonly hold.
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def is_csv(path: str) -> bool:
    return path.lower().endswith(CSV_SUFFIXES)


def csv_batches(path: str) -> Iterator[pa.RecordBatch]:
    """Record batches of a CSV file (gzip by extension), every field as text."""
    import pyarrow.csv as pacsv

    if not os.path.exists(path):
        raise DataError(f"{path}: no such file or directory")
    header = _csv_header(path)
    if not header:
        return
    types = {name: pa.large_string() for name in header}
    try:
        reader = pacsv.open_csv(
            pa.input_stream(path, compression="detect"),
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))
        empty = True
        for batch in reader:
            empty = False
            yield batch
        if empty:  # a header and no rows: the fields are still known
            yield pa.RecordBatch.from_pylist([], schema=pa.schema(types))
    except (pa.ArrowInvalid, OSError):
        # pyarrow's message quotes the offending row: patient data, never shown
        raise InputFormatError(f"{path}: not a readable CSV file (a row has the wrong number of "
                               "fields or broken quoting)",
                               hint="MIMIC tables are comma-separated with a header row") from None


def _csv_header(path: str) -> list[str]:
    with pa.input_stream(path, compression="detect") as stream:
        line = io.TextIOWrapper(stream, encoding="utf-8", errors="replace").readline()
    return next(csv.reader([line]), [])


def lowercase(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """Field names in lower case; two fields that differ only in case are an error."""
    lower = [c.lower() for c in frame.columns]
    if len(set(lower)) < len(lower):
        clash = sorted({c for c in lower if lower.count(c) > 1})
        raise DataError(f"{source}: fields differ only in case: {', '.join(clash)}",
                        hint="rename one of them")
    return frame.rename(dict(zip(frame.columns, lower)))


def require(frame: pl.DataFrame, source: str, fields: Sequence[str],
            shown: Sequence[str] | None = None) -> None:
    """Raise MissingFieldError for the first absent field, listing the fields present."""
    for name in fields:
        if name not in frame.columns:
            raise MissingFieldError(source, name, list(shown or frame.columns))


def integer_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast text id fields (from CSV) to Int64 where every value is an integer."""
    return frame.with_columns([_integer_if_possible(frame[name]) for name in INTEGER_FIELDS
                               if name in frame.columns and frame[name].dtype == pl.String])


def _integer_if_possible(column: pl.Series) -> pl.Series:
    as_int = column.str.strip_chars().cast(pl.Int64, strict=False)
    if as_int.null_count() == column.null_count():
        return as_int
    as_float = column.str.strip_chars().cast(pl.Float64, strict=False)  # pandas exports: 123.0
    if as_float.null_count() == column.null_count() and bool((as_float.fill_null(0) % 1 == 0).all()):
        return as_float.cast(pl.Int64)
    return column


def datetime_expr(frame: pl.DataFrame, name: str, source: str) -> pl.Expr:
    """The field as a naive microsecond datetime; text that is not a date-time becomes null
    (as pandas' errors='coerce' in ClinicalBERT). Zoned times keep their wall-clock time."""
    dtype = frame.schema[name]
    column = pl.col(name)
    if dtype == pl.Null:
        return pl.lit(None, pl.Datetime("us")).alias(name)
    if dtype == pl.String:
        return pl.coalesce([column.str.strip_chars().str.to_datetime(f, strict=False, time_unit="us")
                            for f in TIME_FORMATS]).alias(name)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            column = column.dt.replace_time_zone(None)
        return column.cast(pl.Datetime("us"))
    if dtype == pl.Date:
        return column.cast(pl.Datetime("us"))
    raise DataError(f"{source}: field '{name}' has type {dtype}, expected a date-time or text "
                    "like 2164-10-23 21:09:00")


def parse_times(frame: pl.DataFrame, names: Sequence[str], source: str,
                prefix: str) -> pl.DataFrame:
    """Add `prefix + name` datetime fields; warn (with counts only) about unparsable values."""
    present = [n for n in names if n in frame.columns]
    frame = frame.with_columns([datetime_expr(frame, n, source).alias(prefix + n) for n in present])
    bad = frame.select([(pl.col(n).is_not_null() & pl.col(prefix + n).is_null()).sum().alias(n)
                        for n in present])
    for name, count in zip(bad.columns, bad.row(0) if present else ()):
        if count:
            log.warn(f"{source}: {count} values of field '{name}' are not date-times and count "
                     "as missing")
    return frame


def with_category(frame: pl.DataFrame) -> pl.DataFrame:
    """MIMIC-IV notes: a `category` derived from `note_type` when there is none."""
    if "category" in frame.columns or "note_type" not in frame.columns:
        return frame
    return frame.with_columns(pl.col("note_type").cast(pl.String).replace(NOTE_TYPES)
                              .alias("category"))


def read_admissions(path: str, fmt: str | None = None) -> tuple[pl.DataFrame, list[str]]:
    """The whole admissions table, fields lowercased; also its original field names."""
    from ehrkit.io import read_table

    if is_csv(path) and fmt is None:
        batches = list(csv_batches(path))
        table = pa.Table.from_batches(batches) if batches else pa.table({})
    else:
        table = read_table([path], fmt)
    frame = pl.from_arrow(table) if table.num_columns else pl.DataFrame()
    names = list(frame.columns)
    return integer_ids(lowercase(frame, path)), names


def note_frames(paths: Sequence[str], fmt: str | None = None
                ) -> Iterator[tuple[pl.DataFrame, str, list[str]]]:
    """(notes, source name, original field names) per batch of every input, fields
    lowercased and ids cast: memory is bounded by the batch size."""
    from ehrkit.io import read_batches

    for path in paths:
        name = "<stdin>" if path == "-" else path
        batches = csv_batches(path) if is_csv(path) and fmt is None else read_batches([path], fmt)
        for batch in batches:
            frame = pl.from_arrow(batch)
            if isinstance(frame, pl.Series):
                frame = frame.to_frame()
            original = list(frame.columns)
            yield with_category(integer_ids(lowercase(frame, name))), name, original
