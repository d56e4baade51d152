"""Metric records: their declared schema, and the readable table `evaluate` prints on stderr."""

from __future__ import annotations

import pyarrow as pa

from ehrkit import log

METRIC_SCHEMA = pa.schema([
    ("task", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
    ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("n", pa.int64()), ("unit", pa.string()),
    ("subgroup", pa.string()), ("source", pa.string()),
])


def metric_table(records: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(records, schema=METRIC_SCHEMA)


def print_table(records: list[dict], confidence: float = 0.95) -> None:
    """One line per metric, grouped by subgroup and source; nothing with -q."""
    if not records:
        return
    ci = f"{round(confidence * 100):g}% CI"
    rows = [("subgroup", "source", "metric", "value", ci, "n")]
    for r in records:
        interval = ("" if r["ci_low"] is None or r["ci_high"] is None
                    else f"{r['ci_low']:.4f} - {r['ci_high']:.4f}")
        rows.append((r["subgroup"] or "all", r["source"] or "", r["metric"], _fmt(r["value"]),
                     interval, f"{r['n']} {r['unit']}"))
    show = [i for i in range(len(rows[0])) if any(row[i] for row in rows[1:])]
    widths = [max(len(row[i]) for row in rows) for i in show]
    log.info(f"{records[0]['task']}:")
    for k, row in enumerate(rows):
        cells = [row[i].rjust(w) if i in (3, 4) else row[i].ljust(w) for i, w in zip(show, widths)]
        log.info("  " + "  ".join(cells).rstrip())
        if k == 0:
            log.info("  " + "  ".join("-" * w for w in widths))


def _fmt(value: float | None) -> str:
    return "nan" if value is None else f"{value:.4f}"
