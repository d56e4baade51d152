"""MEDS event records as timelines and events (see events.py).

Input: a MEDS dataset directory (`data/**/*.parquet`, optionally `metadata/`), a directory of
MEDS parquet shards, or one Parquet or JSONL file of event records with the MEDS fields
`subject_id`, `time`, `code`, `numeric_value` and, optionally, `text_value`.

Timelines, three ways:
- one per subject (the default): timeline_id is the subject_id as text; it runs from the
  subject's first timed event to its last.
- one per label row, given a MEDS label file (`subject_id`, `prediction_time` and any of
  `boolean_value`, `integer_value`, `float_value`, `categorical_value`): timeline_id is
  `<subject_id>@<prediction_time in UTC, ISO>`; it ends at the prediction time and holds only
  events at or before it (MEDS: models may use data "up to and including" that time). Label
  rows whose subject has no event by then are dropped and counted in `skipped`.
- one per value of an extra column (`timeline_field`, e.g. the `hospitalization_id` that the
  CLIF-to-MEDS ETL writes): the subject's static events are copied into each; timed events
  where that column is null (the demo's MEDS_DEATH and code status rows) belong to no timeline.

Events: TL_START, then the subject's static events (null time) in the prefix at the start with
their codes; then every timed event, its MEDS code as the token (MEDS codes are already
namespaced, `LAB//wbc//10*3/uL//cbc`), its `numeric_value` binned like any other value; an
event with only a `text_value`, or no value, is its code alone (free text never becomes a
token); TL_END at the end. MEDS_DEATH and MEDS_BIRTH are ordinary coded events.

Times: MEDS times carry no time zone. They are read as wall-clock times in `timezone` (UTC
unless told otherwise) and converted to UTC, the event frame's zone. The CLIF-to-MEDS ETL
writes America/Chicago wall-clock time; for its demo years (2110-2201) the zone library it ran
with knew no daylight saving, so that data is exactly UTC-6 throughout: `Etc/GMT+6`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from ehrkit.errors import DataError, MissingFieldError, UsageError
from ehrkit.timeline.events import EVENT, PREFIX, SUFFIX, conform, table_rank

REQUIRED = ("subject_id", "time", "code")
LABEL_FIELDS = ("boolean_value", "integer_value", "float_value", "categorical_value")
BIRTH_CODE, DEATH_CODE = "MEDS_BIRTH", "MEDS_DEATH"
SPLITS_FILE = Path("metadata") / "subject_splits.parquet"
UTC = pl.Datetime("us", "UTC")

# ehrkit's outcomes (tokenize.OUTCOMES) as codes of CLIF-derived MEDS data (the CLIF-to-MEDS
# ETL); a value ending in `//` is a code prefix. Not derivable for MEDS data in general: codes
# are whatever the ETL wrote, so give a label file instead. MEDS_DEATH is a death at any time,
# in or out of hospital, not the same-admission death of the source.
MEDS_OUTCOMES = {"same_admission_death": "HOSP//discharge_category//expired",
                 "icu_admission": "ADT//TRANSFER_IN//icu//",
                 "imv_event": "RESP//device_category//imv"}


@dataclass
class MedsSource:
    """MEDS events (subject_id as read, time in UTC, code, numeric_value, text_value) and how
    they are cut into timelines."""

    location: Path
    frame: pl.LazyFrame
    labels: pl.DataFrame | None = None
    timeline_field: str | None = None
    splits_file: Path | None = None  # metadata/subject_splits.parquet, when the dataset has one
    skipped: list[str] = field(default_factory=list)
    _timelines: pl.DataFrame | None = None

    @property
    def id_field(self) -> str:
        """What timeline_id is called in output records."""
        if self.labels is not None:
            return "timeline_id"
        return self.timeline_field or "subject_id"

    @property
    def extra_fields(self) -> tuple[str, ...]:
        """Columns of `timelines()` after the first four: prediction_time and label values."""
        return () if self.labels is None else tuple(self.labels.columns[1:])

    def timelines(self) -> pl.DataFrame:
        """timeline_id, patient_id, start, end (and extra_fields) of every timeline."""
        if self._timelines is None:
            self._timelines = self._build_timelines()
        return self._timelines.drop("_subject")

    def events(self, timelines: pl.DataFrame) -> pl.LazyFrame:
        """Every event of the given timelines (rows of `timelines()`), conformed."""
        self.timelines()
        chosen = self._timelines.join(timelines.select("timeline_id"), on="timeline_id", how="semi")
        # is_in on the column as stored lets parquet statistics skip other subjects' row groups
        rows = self.frame.filter(pl.col("subject_id").is_in(chosen["_subject"].unique().to_list())
                                 & pl.col("code").is_not_null())
        ids = chosen.lazy()
        static = rows.filter(pl.col("time").is_null()).join(
            ids, left_on="subject_id", right_on="_subject")
        timed = rows.filter(pl.col("time").is_not_null())
        if self.timeline_field:
            timed = timed.join(ids, left_on=self.timeline_field, right_on="timeline_id")
            timed = timed.with_columns(pl.col(self.timeline_field).alias("timeline_id"))
        else:
            timed = timed.join(ids, left_on="subject_id", right_on="_subject")
        if self.labels is not None:
            timed = timed.filter(pl.col("time") <= pl.col("prediction_time"))
        parts = [_marker(ids, "start", PREFIX, "TL_START"), _coded(static, "start", PREFIX, 1),
                 _coded(timed, "time", EVENT, table_rank("meds")),
                 _marker(ids, "end", SUFFIX, "TL_END")]
        return pl.concat([conform(p) for p in parts], how="vertical")

    def _build_timelines(self) -> pl.DataFrame:
        timed = self.frame.filter(pl.col("time").is_not_null())
        span = [pl.col("time").min().alias("start"), pl.col("time").max().alias("end")]
        if self.labels is not None:
            frame = self._label_timelines(timed)
        elif self.timeline_field:
            key = self.timeline_field
            frame = timed.filter(pl.col(key).is_not_null()).group_by("subject_id", key) \
                .agg(span).collect().with_columns(pl.col(key).alias("timeline_id"))
            if frame["timeline_id"].is_duplicated().any():
                raise DataError(f"{self.location}: some {key} values belong to several subjects",
                                hint=f"{key} must identify one subject's events to be a timeline")
        else:
            frame = timed.group_by("subject_id").agg(span).collect() \
                .with_columns(pl.col("subject_id").cast(pl.String).alias("timeline_id"))
        return frame.select("timeline_id", pl.col("subject_id").cast(pl.String).alias("patient_id"),
                            "start", "end", *self.extra_fields,
                            pl.col("subject_id").alias("_subject")).sort("timeline_id")

    def _label_timelines(self, timed: pl.LazyFrame) -> pl.DataFrame:
        """One timeline per label row: from the subject's first event to the prediction time."""
        first = timed.group_by("subject_id").agg(pl.col("time").min().alias("start")).collect()
        frame = self.labels.join(first, on="subject_id", how="left")
        usable = pl.col("start").is_not_null() & (pl.col("start") <= pl.col("prediction_time"))
        dropped = frame.height - frame.filter(usable).height
        if dropped:
            self.skipped.append(f"{dropped} label rows without events at or before their "
                                "prediction time")
        when = pl.col("prediction_time").dt.strftime("%Y-%m-%dT%H:%M:%S%.f")
        return frame.filter(usable).with_columns(
            pl.col("prediction_time").alias("end"),
            (pl.col("subject_id").cast(pl.String) + "@" + when).alias("timeline_id"))


def open_meds(path: str | Path, *, labels: str | Path | None = None, timezone: str = "UTC",
              timeline_field: str | None = None) -> MedsSource:
    """Find and check MEDS event records (and a label file); raise DataError on what cannot
    work. Nothing but the schemas is read until timelines() or events() is asked for."""
    path = Path(path)
    _check_timezone(timezone)
    if labels is not None and timeline_field:
        raise UsageError("a label file and a timeline field cannot be combined: label "
                         "timelines are per subject and prediction time")
    frame, name = _scan(path)
    frame = _normalize(frame, name, timezone, timeline_field)
    subject_dtype = frame.collect_schema()["subject_id"]
    label_frame = None if labels is None else _read_labels(Path(labels), subject_dtype, timezone)
    splits = path / SPLITS_FILE if path.is_dir() and (path / SPLITS_FILE).is_file() else None
    return MedsSource(path, frame, label_frame, timeline_field, splits)


def _scan(path: Path) -> tuple[pl.LazyFrame, str]:
    from ehrkit.io import format_from_name, read_table

    if path.is_dir():
        root = path / "data" if (path / "data").is_dir() else path
        files = sorted(p for p in root.rglob("*.parquet")
                       if not p.is_relative_to(path / "metadata"))
        if not files:
            raise DataError(f"{path}: no MEDS data: expected data/**/*.parquet (a MEDS dataset) "
                            "or a directory of MEDS event parquet files")
        return pl.scan_parquet(files, missing_columns="insert", extra_columns="ignore"), str(root)
    if not path.is_file():
        raise DataError(f"{path}: no such file or directory")
    if format_from_name(str(path)) == "parquet":
        return pl.scan_parquet(path), str(path)
    frame = pl.from_arrow(read_table([str(path)]))
    if frame.height == 0:
        raise DataError(f"{path}: no MEDS event records")
    return _parse_text_time(frame, "time", str(path)).lazy(), str(path)


def _normalize(frame: pl.LazyFrame, name: str, timezone: str,
               timeline_field: str | None) -> pl.LazyFrame:
    """subject_id as stored, time in UTC, code, numeric_value, text_value (+ timeline_field)."""
    schema = frame.collect_schema()
    for column in (*REQUIRED, *([timeline_field] if timeline_field else [])):
        if column not in schema:
            raise MissingFieldError(name, column, schema.names(),
                                    "--timeline-field" if column == timeline_field else None)
    subject = schema["subject_id"]
    if not (subject.is_integer() or subject == pl.String):
        raise DataError(f"{name}: field 'subject_id' is {subject}, expected an integer (MEDS) "
                        "or text")
    for column, ok in (("code", _is_text), ("numeric_value", _is_number), ("text_value", _is_text)):
        if column in schema and not ok(schema[column]):
            raise DataError(f"{name}: field '{column}' is {schema[column]}; see the MEDS data "
                            "schema")
    columns = [pl.col("subject_id"), _utc("time", schema["time"], timezone, name),
               pl.col("code").cast(pl.String), _optional(schema, "numeric_value", pl.Float64),
               _optional(schema, "text_value", pl.String)]
    if timeline_field:
        columns.append(pl.col(timeline_field).cast(pl.String))
    return frame.select(columns)


def _read_labels(path: Path, subject_dtype: pl.DataType, timezone: str) -> pl.DataFrame:
    """subject_id (as the data stores it), prediction_time (UTC), the label values present."""
    from ehrkit.io import read_table

    if not path.exists():
        raise DataError(f"{path}: label file not found")
    frame = pl.from_arrow(read_table([str(path)]))
    for column in ("subject_id", "prediction_time"):
        if column not in frame.columns:
            raise MissingFieldError(str(path), column, frame.columns)
    frame = _parse_text_time(frame, "prediction_time", str(path))
    values = [c for c in LABEL_FIELDS if c in frame.columns]
    try:
        frame = frame.select(pl.col("subject_id").cast(subject_dtype),
                             _utc("prediction_time", frame.schema["prediction_time"], timezone,
                                  str(path)), *values)
    except pl.exceptions.InvalidOperationError:
        raise DataError(f"{path}: label subject_id values are not {subject_dtype} like the "
                        "data's") from None
    if frame["prediction_time"].null_count() or frame["subject_id"].null_count():
        raise DataError(f"{path}: every label needs a subject_id and a prediction_time")
    if frame.select("subject_id", "prediction_time").is_duplicated().any():
        raise DataError(f"{path}: several labels share a subject_id and prediction_time",
                        hint="give one label row per subject and prediction time")
    return frame


def _marker(ids: pl.LazyFrame, time: str, section: int, code: str) -> pl.LazyFrame:
    return ids.select("timeline_id", "patient_id", pl.col(time).alias("time"),
                      pl.lit(section).alias("section"), pl.lit(0).alias("table"),
                      pl.lit(code).alias("code"))


def _coded(rows: pl.LazyFrame, time: str, section: int, table: int) -> pl.LazyFrame:
    """MEDS rows as events: the code, and the numeric value to bin when there is one."""
    return rows.select("timeline_id", "patient_id", pl.col(time).alias("time"),
                       pl.lit(section).alias("section"), pl.lit(table).alias("table"), "code",
                       pl.col("numeric_value").alias("value"),
                       pl.col("numeric_value").is_not_null().alias("binned"))


def _utc(column: str, dtype: pl.DataType, timezone: str, name: str) -> pl.Expr:
    """A MEDS timestamp column as UTC: naive times are wall-clock time in `timezone`."""
    if dtype == pl.Null:  # every row static
        return pl.lit(None, UTC).alias(column)
    expr = pl.col(column)
    if dtype == pl.Date:
        expr, dtype = expr.cast(pl.Datetime("us")), pl.Datetime("us")
    if not isinstance(dtype, pl.Datetime):
        raise DataError(f"{name}: field '{column}' is {dtype}, expected a timestamp")
    if dtype.time_zone is None:
        expr = expr.dt.replace_time_zone(timezone, ambiguous="earliest")
    return expr.dt.convert_time_zone("UTC").cast(UTC).alias(column)


def _parse_text_time(frame: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
    """ISO date-time text (as JSONL carries it) as timestamps; eager, so offsets are honoured."""
    if column not in frame.columns or frame.schema[column] != pl.String:
        return frame
    try:
        return frame.with_columns(frame[column].str.to_datetime(time_unit="us"))
    except pl.exceptions.PolarsError:
        raise DataError(f"{name}: field '{column}' holds text that is not an ISO date-time",
                        hint="write times like 2180-05-06T21:23:00") from None


def _check_timezone(timezone: str) -> None:
    try:
        pl.Series([datetime(2000, 1, 1)]).dt.replace_time_zone(timezone)
    except pl.exceptions.PolarsError:
        raise UsageError(f"unknown time zone '{timezone}'",
                         hint="use an IANA name such as UTC, America/Chicago or Etc/GMT+6") from None


def _optional(schema: pl.Schema, column: str, dtype: pl.DataType) -> pl.Expr:
    if column in schema:
        return pl.col(column).cast(dtype)
    return pl.lit(None, dtype).alias(column)


def _is_text(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical, pl.Null)


def _is_number(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype == pl.Null
