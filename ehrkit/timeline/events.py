"""The event frame: what every timeline source (CLIF, MEDS) is turned into before tokenizing.

One row per event, as a polars (Lazy)Frame with EVENT_SCHEMA:

- `timeline_id`  the timeline it belongs to (a CLIF hospitalization, a MEDS subject)
- `patient_id`   the patient, for patient-level splits
- `time`         UTC microseconds; prefix events carry the timeline's start, suffix events its end
- `section`      0 prefix (demographics), 1 events, 2 suffix (discharge): the outer sort key
- `table`        the source table's rank in TABLE_ORDER: keeps same-time events grouped
- `code`         the first token, table-prefixed so `other` in one table never collides
                 with `other` in another (the source's flaw): `LAB_potassium`, `ADT_icu`
- `value`        a number to bin into a quantile token after `code`; NaN gives `nan`
- `binned`       whether `code` takes a quantile token (numeric events)
- `label`        an optional categorical second token (`RESP-MODE_pressure control`)

Events of one timeline sort by (section, time, table, code, value, label): deterministic,
independent of row order and of the vocabulary.
"""

from __future__ import annotations

import polars as pl

EVENT_SCHEMA = {
    "timeline_id": pl.String, "patient_id": pl.String,
    "time": pl.Datetime("us", "UTC"), "section": pl.UInt8, "table": pl.UInt8,
    "code": pl.String, "value": pl.Float64, "binned": pl.Boolean, "label": pl.String,
}
PREFIX, EVENT, SUFFIX = 0, 1, 2
# The source built its vocabulary table by table in this order and broke time ties by id,
# which grouped same-time events by table; the rank keeps that grouping explicitly.
TABLE_ORDER = ("patient", "hospitalization", "adt", "labs", "vitals",
               "medication_admin_continuous", "patient_assessments", "respiratory_support",
               "position", "meds")
SORT_KEYS = ["section", "time", "table", "code", "value", "label"]


def table_rank(name: str) -> int:
    return TABLE_ORDER.index(name)


def conform(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add missing optional columns and cast to EVENT_SCHEMA, columns in order."""
    have = frame.collect_schema().names()
    defaults = {"value": pl.lit(None, pl.Float64), "binned": pl.lit(False), "label": pl.lit(None, pl.String)}
    frame = frame.with_columns([expr.alias(name) for name, expr in defaults.items() if name not in have])
    return frame.select([pl.col(name).cast(dtype) for name, dtype in EVENT_SCHEMA.items()])


def token_text(prefix: str, value: pl.Expr) -> pl.Expr:
    """`PREFIX_value`, lowercased, with null values as `unknown` (as the source lowercases)."""
    return pl.lit(prefix + "_") + value.cast(pl.String).str.to_lowercase().fill_null("unknown")
