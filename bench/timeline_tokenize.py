"""Benchmark: `ehrkit timeline tokenize` on synthetic CLIF, against a research-script baseline.

Generates synthetic CLIF directories of about 1 million and about 10 million event rows
(`ehrkit synth clif`), tokenizes each with ehrkit (rows/s, peak memory), and checks the
scaling: the 10x larger input should take at most 11x the time, with peak memory under 3 GB.

The baseline is what research scripts do: pandas frames, grouped by hospitalization, and a
Python loop that builds each timeline event by event, with the same vocabulary and bins
(numpy digitize). It runs on the ~1M-row input in the same run, and the ratio is printed
(target: ehrkit at least 5x faster).

    python bench/timeline_tokenize.py                 # ~1M and ~10M rows
    python bench/timeline_tokenize.py --sizes 1700    # a quick look (hospitalizations)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ehrkit, measure

ROWS_PER_STAY = 595  # event rows per synthetic hospitalization, measured


def make_clif(directory: Path, stays: int) -> int:
    if not directory.exists():
        measure(ehrkit("synth", "clif", "-n", str(stays), "--seed", "1", "-o", str(directory), "-q"))
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in directory.glob("clif_*.parquet"))


# ------------------------------------------------------------------------- the baseline

TABLES = {  # table: (time column, prefix, category column, value column)
    "adt": ("in_dttm", "ADT", "location_category", None),
    "labs": ("lab_result_dttm", "LAB", "lab_category", "lab_value_numeric"),
    "vitals": ("recorded_dttm", "VTL", "vital_category", "vital_value"),
    "medication_admin_continuous": ("admin_dttm", "MED", "med_category", "med_dose"),
    "patient_assessments": ("recorded_dttm", "ASMT", "assessment_category", "numerical_value"),
    "respiratory_support": ("recorded_dttm", "RESP", "device_category", None),
    "position": ("recorded_dttm", "POSN", "position_category", None),
}


def baseline(directory: Path, vocab_path: Path, out_path: Path) -> int:
    """Per-hospitalization Python loop over pandas frames; returns the timelines written."""
    import pandas as pd

    vocab = json.loads(vocab_path.read_text())
    index = {token: i for i, token in enumerate(vocab["tokens"])}
    cuts = {code: np.asarray(c) for code, c in vocab["cuts"].items()}
    unk = index["UNK"]

    def tok(text):
        return index.get(text, unk)

    hosp = pd.read_parquet(directory / "clif_hospitalization.parquet")
    patients = pd.read_parquet(directory / "clif_patient.parquet").drop_duplicates("patient_id") \
        .set_index("patient_id")
    groups = {table: dict(tuple(pd.read_parquet(directory / f"clif_{table}.parquet")
                                .groupby("hospitalization_id")))
              for table in TABLES}
    written = 0
    with open(out_path, "w") as out:
        for stay in hosp.itertuples():
            person = patients.loc[stay.patient_id]
            ids = [tok("TL_START"), tok(f"RACE_{str(person.race_category).lower()}"),
                   tok(f"ETHN_{str(person.ethnicity_category).lower()}"),
                   tok(f"SEX_{str(person.sex_category).lower()}"), tok("AGE"),
                   tok(f"Q{int(np.digitize(stay.age_at_admission, cuts['AGE']))}"),
                   tok(f"ADMN_{str(stay.admission_type_category).lower()}")]
            events = []
            for rank, (table, (time_col, prefix, cat_col, value_col)) in enumerate(TABLES.items()):
                rows = groups[table].get(stay.hospitalization_id)
                if rows is None:
                    continue
                for row in rows.itertuples():
                    category = getattr(row, cat_col)
                    if category is None or (table == "position" and category != "prone"):
                        continue
                    code = f"{prefix}_{str(category).lower()}"
                    tokens = [tok(code)]
                    if table == "patient_assessments" and np.isnan(row.numerical_value):
                        if not isinstance(row.categorical_value, str):
                            continue
                        events.append((row.recorded_dttm, rank, code, tokens + [
                            tok(f"ASMT-VAL_{row.categorical_value.lower()}")]))
                        continue
                    if table == "respiratory_support" and isinstance(row.mode_category, str):
                        tokens.append(tok(f"RESP-MODE_{row.mode_category.lower()}"))
                    if value_col is not None:
                        value = getattr(row, value_col)
                        if value is None or np.isnan(value):
                            tokens.append(tok("nan"))
                        elif code in cuts:
                            tokens.append(tok(f"Q{int(np.digitize(value, cuts[code]))}"))
                        else:
                            tokens.append(unk)
                    events.append((getattr(row, time_col), rank, code, tokens))
            events.sort(key=lambda e: (e[0], e[1], e[2]))
            for event in events:
                ids.extend(event[3])
            ids += [tok(f"DSCG_{str(stay.discharge_category).lower()}"), tok("TL_END")]
            out.write(json.dumps({"hospitalization_id": stay.hospitalization_id,
                                  "input_ids": ids}) + "\n")
            written += 1
    return written


# ------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1700,17000",
                        help="hospitalizations per input (about 1M and 10M rows)")
    parser.add_argument("--dir", default=None, help="where to put the data")
    args = parser.parse_args()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="ehrkit-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for stays in [int(s) for s in args.sizes.split(",")]:
        clif = workdir / f"clif-{stays}"
        rows = make_clif(clif, stays)
        vocab = workdir / f"vocab-{stays}.json"
        seconds, peak = measure(ehrkit("timeline", "tokenize", str(clif), "--split", "--fit",
                                       str(vocab), "-o", str(workdir / f"t-{stays}.parquet"), "-q"))
        results.append((stays, rows, seconds, peak, vocab, clif))
        print(f"ehrkit: {rows:>10,} rows ({stays} stays): {seconds:6.1f} s, "
              f"{rows / seconds:>10,.0f} rows/s, peak memory {peak:6.0f} MB")
    if len(results) > 1:
        (_, r1, s1, *_), (_, r2, s2, p2, *_) = results[0], results[-1]
        print(f"scaling: {r2 / r1:.1f}x the rows took {s2 / s1:.1f}x the time "
              f"(target <= 11x for 10x); peak {p2:.0f} MB (target < 3000 MB)")
    stays, rows, seconds, _, vocab, clif = results[0]
    start = time.perf_counter()
    baseline(clif, vocab, workdir / "baseline.jsonl")
    base = time.perf_counter() - start
    print(f"baseline (pandas, per-hospitalization loop): {rows:,} rows in {base:.1f} s, "
          f"{rows / base:,.0f} rows/s")
    print(f"ratio: ehrkit {base / seconds:.1f}x faster (target >= 5x)")
    print(f"data in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
