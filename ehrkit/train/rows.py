"""Which records a training run may use: ids kept out (held-out admissions or patients),
`held_out` rows of a split, and the validation rows. Shared by the objectives."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrkit.errors import DataError, MissingFieldError

ID_FIELDS = ("hadm_id", "subject_id", "patient_id")


def exclude(table: pa.Table, exclude_ids: str | None, id_field: str | None,
            source: str) -> tuple[pa.Table, int, list[str]]:
    """Drop the records whose admission or patient is listed in `exclude_ids`."""
    if not exclude_ids:
        return table, 0, []
    wanted = [id_field] if id_field else list(ID_FIELDS)
    listed = read_ids(exclude_ids, wanted)
    usable = [f for f in listed if f in table.column_names]
    if not usable:
        raise MissingFieldError(source, wanted[0] if len(wanted) == 1 else "/".join(wanted),
                                table.column_names, "--id-field")
    drop = np.zeros(table.num_rows, dtype=bool)
    for name in usable:
        values = pa.array(sorted(listed[name]), pa.string())
        hit = pc.is_in(_id_strings(table[name].combine_chunks()), value_set=values)
        drop |= hit.fill_null(False).to_numpy(zero_copy_only=False)
    return table.filter(pa.array(~drop)), int(drop.sum()), usable


def read_ids(path: str, fields_: list[str]) -> dict[str, set[str]]:
    """Ids to exclude, by field. A records file (JSONL, Parquet) gives each of its id fields'
    own ids: a file of test admissions that also names their patients drops every note of those
    patients (`id_field` narrows it to one field). A plain list (one id per line, `#` comments)
    applies to every id field, unless its first line names one: an id that happens to name both
    an admission and a patient drops both, since leaking a test note is the worse error."""
    from ehrkit.io import read_table

    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or directory (--exclude-ids)")
    head = b""
    if p.is_file():
        with open(p, "rb") as f:
            head = f.read(64)
    records = p.is_dir() or head[:4] == b"PAR1" or head.lstrip()[:1] == b"{" or \
        p.name.lower().removesuffix(".gz").endswith((".jsonl", ".ndjson", ".json", ".parquet", ".pq"))
    if records:
        table = read_table(str(p))
        present = [f for f in fields_ if f in table.column_names]
        if not present:
            raise MissingFieldError(path, "/".join(fields_), table.column_names, "--id-field")
        return {f: set(_id_strings(table[f].combine_chunks()).drop_null().to_pylist()) for f in present}
    raw = p.read_bytes()
    lines = [line.strip() for line in (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
             .decode("utf-8", errors="replace").splitlines()]
    ids = {line for line in lines if line and not line.startswith("#")}
    header = next((line for line in lines if line), None)
    if header in fields_:
        return {header: ids - {header}}
    return {f: ids for f in fields_}


def _id_strings(array: pa.Array) -> pa.Array:
    """Ids as text, so `123`, `123.0` (a float column) and "123" all match."""
    if pa.types.is_floating(array.type):
        array = pc.cast(array, pa.int64(), safe=False)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    return pc.utf8_trim_whitespace(array.cast(pa.string()))


def drop_held_out(table: pa.Table) -> tuple[pa.Table, int]:
    if "split" not in table.column_names:
        return table, 0
    held = pc.fill_null(pc.equal(table["split"], "held_out"), False)
    return table.filter(pc.invert(held)), int(pc.sum(held).as_py() or 0)


def validation_notes(table: pa.Table, fraction: float, seed: int) -> np.ndarray:
    """The `tuning` split when there is one, else round(fraction x notes) notes chosen by seed
    (at least one when the fraction is positive and there are two notes or more)."""
    n = table.num_rows
    if "split" in table.column_names:
        tuning = pc.fill_null(pc.equal(table["split"], "tuning"), False).to_numpy(zero_copy_only=False)
        if tuning.any():
            return tuning
    count = min(max(round(fraction * n), 1 if fraction > 0 and n > 1 else 0), max(n - 1, 0))
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(n)[:count]] = True
    return chosen
