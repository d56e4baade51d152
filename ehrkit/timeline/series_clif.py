"""CLIF 2.x stays on the hourly grid for `timeline series` (see series_sources.py)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ehrkit import log
from ehrkit.errors import DataError, InputFormatError, MissingFieldError

from ehrkit.timeline.series_sources import (CLIF_TABLES, Events, Group, HOUR_US, Variable)


# ----------------------------------------------------------------------------- CLIF

@dataclass
class _Plan:
    """How one CLIF table is read: file, columns, and category (or column) -> variable index."""

    path: Path
    time: str
    category: str | None
    value: str | None
    codes: dict[str, int]
    string_ids: bool

    def scan(self, lo: str, hi: str):
        import polars as pl

        ids = pl.col("hospitalization_id")
        ids = ids if self.string_ids else ids.cast(pl.String)
        # The id range lets Parquet statistics skip row groups that hold other stays.
        frame = pl.scan_parquet(self.path).filter(ids.is_between(pl.lit(lo), pl.lit(hi)))
        time = pl.col(self.time).dt.epoch("us").alias("time")
        if self.category is not None:
            category = pl.col(self.category).cast(pl.String)
            return frame.filter(category.is_in(list(self.codes))).select(
                ids.alias("id"), time,
                category.replace_strict(self.codes, return_dtype=pl.Int64).alias("var"),
                pl.col(self.value).cast(pl.Float64, strict=False).alias("value"))
        columns = list(self.codes)
        return frame.select(ids.alias("id"), time, *[pl.col(c).cast(pl.Float64) for c in columns]) \
            .unpivot(index=["id", "time"], on=columns, variable_name="var", value_name="value") \
            .with_columns(pl.col("var").replace_strict(self.codes, return_dtype=pl.Int64))


def _schema(path: Path):
    import polars as pl

    try:
        return pl.scan_parquet(path).collect_schema()
    except (pl.exceptions.PolarsError, OSError):
        raise InputFormatError(f"{path}: not a readable Parquet file") from None


def _require(path: Path, schema, column: str, option: str | None = None) -> None:
    if column not in schema.names():
        raise MissingFieldError(str(path), column, schema.names(), option)


def _check_time(path: Path, schema, column: str) -> None:
    import polars as pl

    dtype = schema[column]
    if not isinstance(dtype, pl.Datetime):
        raise DataError(f"{path}: column '{column}' is {dtype}, not a timestamp",
                        hint="CLIF datetimes are timezone-aware UTC timestamps")
    if dtype.time_zone is None:
        raise DataError(f"{path}: column '{column}' holds timestamps without a time zone",
                        hint="CLIF datetimes are timezone-aware UTC; convert them, e.g. with "
                        "polars .dt.replace_time_zone('UTC') if they are UTC already")


def _check_number(path: Path, schema, column: str) -> None:
    if not schema[column].is_numeric():
        raise DataError(f"{path}: column '{column}' is {schema[column]}, not numbers")


class ClifSource:
    """CLIF 2.x hospitalizations; label `mortality` (int8): discharge_category 'Expired'. The
    split field of clif_hospitalization, when present, is carried along.

    An extra variable is present when its table exists and holds its category (or column) at
    least once; extra variables are read from time zero to discharge_dttm (no end: all)."""

    def __init__(self, path: str, variables: list[Variable], start: str = "admission",
                 split_field: str = "split", extra: Sequence[Variable] = ()):
        self.dir, self.variables, self.start = Path(path), variables, start
        self.split_field, self.extra = split_field, list(extra)
        self.plans = self._plans()
        self.extra_plans = self._extra_plans()
        found = {v for plan in self.extra_plans for v in plan.codes.values()}
        self.extra_present = [v in found for v in range(len(self.extra))]
        self.stays = self._stays()
        self.fields = [pa.field("mortality", pa.int8())]
        if "split" in self.stays.columns:
            self.fields.append(pa.field(split_field, pa.string()))

    def _plans(self) -> list[_Plan]:
        plans = []
        for table, codes in _by_table(self.variables).items():
            path = self.dir / f"clif_{table}.parquet"
            custom = {c for c, v in codes.items() if self.variables[v].custom}
            if not path.exists():
                if custom:
                    raise InputFormatError(f"{self.dir}: no clif_{table}.parquet for variable "
                                           f"'{table}:{sorted(custom)[0]}'")
                names = sorted({self.variables[v].name for v in codes.values()})
                log.warn(f"{self.dir}: no clif_{table}.parquet: {', '.join(names)} never observed")
                continue
            plan = self._plan(table, path, codes, custom)
            if plan.codes:
                plans.append(plan)
        return plans

    def _extra_plans(self) -> list[_Plan]:
        """Plans for the extra variables; what the directory lacks is left out, quietly."""
        import polars as pl

        plans = []
        for table, codes in _by_table(self.extra).items():
            path = self.dir / f"clif_{table}.parquet"
            if not path.exists():
                continue
            if CLIF_TABLES[table][1] is None:  # wide: a column per variable
                codes = {c: v for c, v in codes.items() if c in _schema(path).names()}
            plan = self._plan(table, path, codes, set())
            if plan.category is not None:
                present = set(pl.scan_parquet(path).select(pl.col(plan.category).cast(pl.String)
                                                           .unique()).collect().to_series())
                plan.codes = {c: v for c, v in plan.codes.items() if c in present}
            if plan.codes:
                plans.append(plan)
        return plans

    def _plan(self, table: str, path: Path, codes: dict[str, int], custom: set[str]) -> _Plan:
        import polars as pl

        schema = _schema(path)
        names = schema.names()
        time, category, value = CLIF_TABLES[table]
        if table == "labs" and time not in names and "lab_collect_dttm" in names:
            log.warn(f"{path}: no lab_result_dttm; labs are placed at lab_collect_dttm")
            time = "lab_collect_dttm"
        if table == "labs" and value not in names and "lab_value" in names:
            value = "lab_value"  # text results: numbers are parsed, the rest is missing
        for column in ("hospitalization_id", time, category, value):
            if column is not None:
                _require(path, schema, column)
        _check_time(path, schema, time)
        if category is None:
            for column in list(codes):
                if column not in names and column not in custom:
                    log.warn(f"{path}: no column '{column}': it is never observed")
                    del codes[column]
                    continue
                _require(path, schema, column, "--variables")
                _check_number(path, schema, column)
        else:
            if value != "lab_value":
                _check_number(path, schema, value)
            if custom:
                present = set(pl.scan_parquet(path).select(pl.col(category).unique())
                              .collect()[category].to_list())
                for wanted in sorted(custom - present):
                    close = difflib.get_close_matches(wanted, [p for p in present if p], n=3)
                    hint = "did you mean " + ", ".join(close) + "?" if close else None
                    raise DataError(f"{path}: column '{category}' has no category '{wanted}'",
                                    hint=hint)
        return _Plan(path, time, category, value, codes, schema["hospitalization_id"] == pl.String)

    def _stays(self):
        import polars as pl

        path = self.dir / "clif_hospitalization.parquet"
        if not path.exists():
            raise InputFormatError(f"{self.dir}: no clif_hospitalization.parquet",
                                   hint="a CLIF directory needs the hospitalization table")
        schema = _schema(path)
        for column in ("hospitalization_id", "patient_id", "admission_dttm"):
            _require(path, schema, column)
        for column in ("admission_dttm", "discharge_dttm"):
            if column in schema.names():
                _check_time(path, schema, column)
        names = schema.names()
        columns = [pl.col("hospitalization_id").cast(pl.String).alias("id"),
                   pl.col("patient_id").cast(pl.String),
                   pl.col("admission_dttm").dt.epoch("us").alias("start"),
                   (pl.col("discharge_dttm").dt.epoch("us") if "discharge_dttm" in names
                    else pl.lit(None, pl.Int64)).alias("end"),
                   ((pl.col("discharge_category").cast(pl.String).str.to_lowercase() == "expired")
                     .cast(pl.Int8)
                    if "discharge_category" in names else pl.lit(None, pl.Int8)).alias("mortality")]
        if self.split_field in names:
            columns.append(pl.col(self.split_field).cast(pl.String).alias("split"))
        frame = pl.scan_parquet(path).select(columns).collect()
        if self.start == "icu":
            frame = self._icu_start(frame)
        unusable = frame.filter(pl.col("id").is_null() | pl.col("start").is_null()).height
        if unusable:
            log.warn(f"{path}: {unusable} hospitalizations without an id or start time skipped")
            frame = frame.filter(pl.col("id").is_not_null() & pl.col("start").is_not_null())
        if frame["id"].is_duplicated().any():
            raise DataError(f"{path}: column 'hospitalization_id' has duplicated ids",
                            hint="a CLIF hospitalization table has one row per hospitalization")
        return frame.sort("id")

    def _icu_start(self, frame):
        import polars as pl

        path = self.dir / "clif_adt.parquet"
        if not path.exists():
            raise InputFormatError(f"{self.dir}: no clif_adt.parquet, which --start icu needs")
        schema = _schema(path)
        for column in ("hospitalization_id", "in_dttm", "location_category"):
            _require(path, schema, column)
        _check_time(path, schema, "in_dttm")
        in_icu = pl.col("location_category").cast(pl.String).str.to_lowercase() == "icu"
        icu = pl.scan_parquet(path).filter(in_icu) \
            .group_by(pl.col("hospitalization_id").cast(pl.String).alias("id")) \
            .agg(pl.col("in_dttm").dt.epoch("us").min().alias("icu")).collect()
        joined = frame.join(icu, on="id", how="inner").with_columns(start=pl.col("icu")).drop("icu")
        log.info(f"--start icu: {frame.height - joined.height} of {frame.height} "
                   "hospitalizations without an ICU stay skipped")
        return joined

    def groups(self, hours: int, size: int, limit: int | None = None) -> Iterator[Group]:
        import polars as pl

        stays = self.stays if limit is None else self.stays.head(limit)
        for first in range(0, stays.height, size):
            chunk = stays.slice(first, size).with_row_index("stay")
            span = (pl.col("end") - pl.col("start")) / HOUR_US
            length = chunk.select(span.ceil().clip(0, hours).fill_null(hours).cast(pl.Int32))
            fields = {"mortality": pa.array(chunk["mortality"].to_list(), pa.int8())}
            split = None
            if "split" in chunk.columns:
                split = np.array(chunk["split"].to_list(), dtype=object)
                fields[self.split_field] = pa.array(split.tolist(), pa.string())
            yield Group(stay_ids=pa.array(chunk["id"].to_list(), pa.string()),
                        patient_ids=pa.array(chunk["patient_id"].to_list(), pa.string()),
                        length=length.to_series().to_numpy(), fields=fields,
                        events=self._events(chunk, hours), split=split,
                        extremes=self._extremes(chunk) if self.extra else None)

    def _events(self, chunk, hours: int) -> Events:
        import polars as pl

        if not self.plans:
            return Events.empty()
        frame = (_observed(self.plans, chunk)
                 .with_columns(bin=(pl.col("time") - pl.col("start")) // HOUR_US)
                 .filter(pl.col("bin") < hours)
                 .select("stay", "var", "bin", "time", "value").collect())
        return Events(*(frame[c].to_numpy() for c in frame.columns))

    def _extremes(self, chunk) -> np.ndarray:
        """Min and max of each extra variable from time zero to discharge (Group.extremes)."""
        import polars as pl

        out = np.full((chunk.height, len(self.extra), 2), np.nan)
        if not self.extra_plans:
            return out
        end = pl.col("end")
        frame = (_observed(self.extra_plans, chunk)
                 .filter(end.is_null() | (pl.col("time") <= end))
                 .group_by("stay", "var")
                 .agg(pl.col("value").min().alias("min"), pl.col("value").max().alias("max"))
                 .collect())
        stay, var = frame["stay"].to_numpy(), frame["var"].to_numpy()
        out[stay, var, 0], out[stay, var, 1] = frame["min"].to_numpy(), frame["max"].to_numpy()
        return out


def _observed(plans: list[_Plan], chunk):
    """The numeric values the plans read for a chunk of stays, from each stay's time zero on."""
    import polars as pl

    keys = chunk.select("id", pl.col("stay").cast(pl.Int64), "start", "end").lazy()
    lo, hi = chunk["id"][0], chunk["id"][-1]
    return (pl.concat([plan.scan(lo, hi) for plan in plans], how="vertical_relaxed")
            .join(keys, on="id", how="inner")
            .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan()
                    & (pl.col("time") >= pl.col("start"))))


def _by_table(variables) -> dict[str, dict[str, int]]:
    """{CLIF table: {category: variable index}} from the variables' `TABLE:CATEGORY` sources."""
    wanted: dict[str, dict[str, int]] = {}
    for v, var in enumerate(variables):
        for source in var.sources:
            table, _, category = source.partition(":")
            wanted.setdefault(table, {})[category] = v
    return wanted
