"""CLIF 2.x directories (`clif_<table>.parquet`) as stays and events (see events.py).

One timeline per hospitalization, as the FMs-for-EHRs tokenizer builds it (methods.md 3.3):
prefix TL_START, race, ethnicity, sex, age, admission type at the start; adt locations, labs
at result time, vitals, continuous medications, assessments, respiratory support and prone
position in time order; discharge category and TL_END at the end. Every categorical token
carries its table's prefix. Start and end follow the source's time QC: the earlier of
admission and the first vital sign, the later of discharge and the last vital sign; stays
that do not end after they start are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ehrkit.errors import DataError
from ehrkit.timeline.events import EVENT, PREFIX, SUFFIX, conform, table_rank, token_text

# Columns each table must have, by kind: s string, t tz-aware datetime, n number.
REQUIRED = {
    "patient": {"patient_id": "s", "race_category": "s", "ethnicity_category": "s",
                "sex_category": "s"},
    "hospitalization": {"hospitalization_id": "s", "patient_id": "s", "admission_dttm": "t",
                        "discharge_dttm": "t", "age_at_admission": "n",
                        "admission_type_category": "s", "discharge_category": "s"},
    "adt": {"hospitalization_id": "s", "in_dttm": "t", "location_category": "s"},
    "labs": {"hospitalization_id": "s", "lab_result_dttm": "t", "lab_category": "s",
             "lab_value_numeric": "n"},
    "vitals": {"hospitalization_id": "s", "recorded_dttm": "t", "vital_category": "s",
               "vital_value": "n"},
    "medication_admin_continuous": {"hospitalization_id": "s", "admin_dttm": "t",
                                    "med_category": "s", "med_dose": "n"},
    "patient_assessments": {"hospitalization_id": "s", "recorded_dttm": "t",
                            "assessment_category": "s", "numerical_value": "n",
                            "categorical_value": "s"},
    "respiratory_support": {"hospitalization_id": "s", "recorded_dttm": "t",
                            "device_category": "s", "mode_category": "s"},
    "position": {"hospitalization_id": "s", "recorded_dttm": "t", "position_category": "s"},
}
CORE = ("patient", "hospitalization")
EVENT_TABLES = tuple(t for t in REQUIRED if t not in CORE)


@dataclass
class ClifSource:
    """A validated CLIF directory: the tables found and what was skipped."""

    directory: Path
    paths: dict[str, Path]
    skipped: list[str] = field(default_factory=list)
    id_field = "hospitalization_id"
    _stays: pl.DataFrame | None = None

    def timelines(self) -> pl.DataFrame:
        """timeline_id, patient_id, start, end of every usable stay (computed once)."""
        if self._stays is None:
            self._stays = stays(self).collect()
        return self._stays.select("timeline_id", "patient_id", "start", "end")

    def events(self, timelines: pl.DataFrame) -> pl.LazyFrame:
        """Every event of the given timelines (rows of `timelines()`)."""
        self.timelines()
        chosen = self._stays.join(timelines.select("timeline_id"), on="timeline_id", how="semi")
        return events(self, chosen.lazy())

    def scan(self, table: str) -> pl.LazyFrame:
        columns = list(REQUIRED[table])
        return pl.scan_parquet(self.paths[table]).select(columns).with_columns(
            [pl.col(c).cast(pl.String) for c, kind in REQUIRED[table].items() if kind == "s"])


def open_clif(directory: str | Path) -> ClifSource:
    """Find and check the tables of a CLIF directory; raise DataError on what cannot work."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory of clif_<table>.parquet files")
    paths, skipped = {}, []
    for table in REQUIRED:
        path = directory / f"clif_{table}.parquet"
        if path.exists():
            _check_columns(path, table)
            paths[table] = path
        elif table in CORE:
            raise DataError(f"{directory}: clif_{table}.parquet is missing",
                            hint="a CLIF timeline needs the patient and hospitalization tables")
        else:
            skipped.append(table)
    return ClifSource(directory, paths, skipped)


def _check_columns(path: Path, table: str) -> None:
    schema = pl.scan_parquet(path).collect_schema()
    for column, kind in REQUIRED[table].items():
        if column not in schema:
            present = ", ".join(schema.names())
            raise DataError(f"{path}: required column '{column}' is missing; columns present: "
                            f"{present}")
        dtype = schema[column]
        if kind == "t" and not (isinstance(dtype, pl.Datetime) and dtype.time_zone):
            what = "has no time zone" if isinstance(dtype, pl.Datetime) else f"is {dtype}"
            raise DataError(f"{path}: column '{column}' {what}; CLIF datetimes are tz-aware UTC",
                            hint="convert with e.g. polars .dt.replace_time_zone('UTC')")
        if kind == "n" and not (dtype.is_numeric() or dtype == pl.Null):
            raise DataError(f"{path}: column '{column}' is {dtype}, expected a number")
        if kind == "s" and not (dtype in (pl.String, pl.Categorical, pl.Null) or dtype.is_integer()):
            raise DataError(f"{path}: column '{column}' is {dtype}, expected text")


def stays(source: ClifSource) -> pl.LazyFrame:
    """One row per hospitalization: ids, start, end, age, admission type, discharge, demographics."""
    hosp = source.scan("hospitalization")
    patient = source.scan("patient").unique("patient_id", keep="first", maintain_order=True)
    frame = hosp.join(patient, on="patient_id", how="left")
    if "vitals" in source.paths:  # the source's time QC: vitals may start before admission
        bounds = source.scan("vitals").group_by("hospitalization_id").agg(
            pl.col("recorded_dttm").min().alias("_first"),
            pl.col("recorded_dttm").max().alias("_last"))
        frame = frame.join(bounds, on="hospitalization_id", how="left")
    else:
        frame = frame.with_columns(_first=pl.col("admission_dttm"), _last=pl.col("discharge_dttm"))
    frame = frame.with_columns(
        start=pl.min_horizontal("admission_dttm", "_first"),
        end=pl.max_horizontal("discharge_dttm", "_last"))
    return frame.filter(pl.col("start") < pl.col("end")).rename(
        {"hospitalization_id": "timeline_id"}).drop("_first", "_last")


def events(source: ClifSource, stay_frame: pl.LazyFrame) -> pl.LazyFrame:
    """All events of the given stays (a frame from `stays`, possibly filtered), conformed."""
    ids = stay_frame.select("timeline_id", "patient_id", "start", "end")
    parts = [_prefix(stay_frame), _suffix(stay_frame)]
    for table in EVENT_TABLES:
        if table in source.paths:
            rows = source.scan(table).rename({"hospitalization_id": "timeline_id"})
            rows = rows.join(ids, on="timeline_id", how="semi")
            parts.append(_TABLE_EVENTS[table](rows).join(
                ids.select("timeline_id", "patient_id"), on="timeline_id"))
    return pl.concat([conform(p) for p in parts], how="vertical")


def _event(rows: pl.LazyFrame, table: str, time: str, code: pl.Expr, value: pl.Expr | None = None,
           label: pl.Expr | None = None) -> pl.LazyFrame:
    columns = [pl.col("timeline_id"), pl.col(time).alias("time"), pl.lit(EVENT).alias("section"),
               pl.lit(table_rank(table)).alias("table"), code.alias("code")]
    if value is not None:
        columns += [value.cast(pl.Float64).alias("value"), pl.lit(True).alias("binned")]
    if label is not None:
        columns.append(label.alias("label"))
    return rows.filter(pl.col(time).is_not_null()).select(columns)


def _prefix(stay_frame: pl.LazyFrame) -> pl.LazyFrame:
    base = [pl.col("timeline_id"), pl.col("patient_id"), pl.col("start").alias("time"),
            pl.lit(PREFIX).alias("section")]
    tokens = [("TL_START", pl.lit("TL_START"), None),
              ("RACE", token_text("RACE", pl.col("race_category")), None),
              ("ETHN", token_text("ETHN", pl.col("ethnicity_category")), None),
              ("SEX", token_text("SEX", pl.col("sex_category")), None),
              ("AGE", pl.lit("AGE"), pl.col("age_at_admission")),
              ("ADMN", token_text("ADMN", pl.col("admission_type_category")), None)]
    # Within the prefix the order is fixed by position, carried in `table`.
    return pl.concat([
        stay_frame.select(*base, pl.lit(rank).alias("table"), code.alias("code"),
                          (value if value is not None else pl.lit(None)).cast(pl.Float64).alias("value"),
                          pl.lit(value is not None).alias("binned"))
        for rank, (_, code, value) in enumerate(tokens)])


def _suffix(stay_frame: pl.LazyFrame) -> pl.LazyFrame:
    base = [pl.col("timeline_id"), pl.col("patient_id"), pl.col("end").alias("time"),
            pl.lit(SUFFIX).alias("section")]
    return pl.concat([
        stay_frame.select(*base, pl.lit(0).alias("table"),
                          token_text("DSCG", pl.col("discharge_category")).alias("code")),
        stay_frame.select(*base, pl.lit(1).alias("table"), pl.lit("TL_END").alias("code"))])


_TABLE_EVENTS = {
    "adt": lambda r: _event(r, "adt", "in_dttm", token_text("ADT", pl.col("location_category"))),
    "labs": lambda r: _event(r.filter(pl.col("lab_category").is_not_null()), "labs",
                             "lab_result_dttm", token_text("LAB", pl.col("lab_category")),
                             pl.col("lab_value_numeric")),
    "vitals": lambda r: _event(r.filter(pl.col("vital_category").is_not_null()), "vitals",
                               "recorded_dttm", token_text("VTL", pl.col("vital_category")),
                               pl.col("vital_value")),
    "medication_admin_continuous": lambda r: _event(
        r.filter(pl.col("med_category").is_not_null()), "medication_admin_continuous",
        "admin_dttm", token_text("MED", pl.col("med_category")), pl.col("med_dose")),
    "patient_assessments": lambda r: pl.concat([
        _event(r.filter(pl.col("numerical_value").is_not_null()), "patient_assessments",
               "recorded_dttm", token_text("ASMT", pl.col("assessment_category")),
               pl.col("numerical_value")),
        _event(r.filter(pl.col("numerical_value").is_null()
                        & pl.col("categorical_value").is_not_null()),
               "patient_assessments", "recorded_dttm",
               token_text("ASMT", pl.col("assessment_category")),
               label=token_text("ASMT-VAL", pl.col("categorical_value")))], how="diagonal"),
    "respiratory_support": lambda r: _event(
        r.filter(pl.col("device_category").is_not_null() | pl.col("mode_category").is_not_null()),
        "respiratory_support", "recorded_dttm", token_text("RESP", pl.col("device_category")),
        label=pl.when(pl.col("mode_category").is_not_null())
        .then(token_text("RESP-MODE", pl.col("mode_category")))),
    "position": lambda r: _event(r.filter(pl.col("position_category").str.to_lowercase() == "prone"),
                                 "position", "recorded_dttm", pl.lit("POSN_prone")),
}
