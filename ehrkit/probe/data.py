"""Embeddings as a matrix, and which rows train, tune and test a probe.

Splits use MEDS names: `train` fits, `tuning` chooses C, `held_out` is predicted. A split field
may also say `val`/`valid`/`validation`/`dev` (tuning) or `test` (held_out); rows with a null or
other value take part in nothing (and are counted). Without a split field the rows are split at
random, by seed; with a group field (e.g. patient_id) whole groups go to one split, so no
patient is in two.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrkit import log
from ehrkit.errors import DataError, MissingFieldError, UsageError

SPLITS = ("train", "tuning", "held_out")
TRAIN, TUNING, HELD_OUT, OUTSIDE = 0, 1, 2, -1
SYNONYMS = {"train": TRAIN, "training": TRAIN, "tuning": TUNING, "val": TUNING, "valid": TUNING,
            "validation": TUNING, "dev": TUNING, "held_out": HELD_OUT, "heldout": HELD_OUT,
            "test": HELD_OUT}


def features(table: pa.Table, name: str, source: str, dim: int | None = None) -> np.ndarray:
    """The feature field as a float64 matrix [rows, dim]; null items become NaN (imputed later).

    Takes fixed-size lists (Parquet from `ehrkit embed`) and plain lists of one length (JSONL).
    """
    if name not in table.column_names:
        raise MissingFieldError(source, name, table.column_names, "--feature-field")
    column = table[name].combine_chunks()
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            or pa.types.is_fixed_size_list(column.type)):
        raise DataError(f"{source}: field '{name}' is {column.type}, not a list of numbers",
                        hint="point --feature-field at the embedding field")
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{source}: row {row + 1}: field '{name}' is null",
                        hint="drop rows without an embedding first")
    lengths = pc.list_value_length(column)
    width = column.type.list_size if pa.types.is_fixed_size_list(column.type) else \
        (pc.max(lengths).as_py() or 0) if len(column) else (dim or 0)
    if len(column) and pc.min(lengths).as_py() != width:
        row = int(np.flatnonzero(lengths.to_numpy(zero_copy_only=False) != width)[0])
        raise DataError(f"{source}: row {row + 1}: field '{name}' has a different length from "
                        f"the first rows ({width})", hint="every embedding needs the same dimension")
    if dim is not None and width != dim:
        raise DataError(f"{source}: field '{name}' has dimension {width}; the probe was fitted "
                        f"on dimension {dim}", hint="embed with the model the probe was fitted on")
    flat = pc.list_flatten(column)
    if not (pa.types.is_floating(flat.type) or pa.types.is_integer(flat.type)):
        raise DataError(f"{source}: field '{name}' holds {flat.type}, not numbers")
    values = flat.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64).reshape(len(column), width)


def split_codes(table: pa.Table, split_field: str, group_field: str | None, val_fraction: float,
                test_fraction: float, seed: int, source: str) -> tuple[np.ndarray, str]:
    """Split code per row (TRAIN, TUNING, HELD_OUT or OUTSIDE) and how it was made."""
    if split_field in table.column_names:
        return codes_from_field(table[split_field], split_field, source), f"field '{split_field}'"
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise UsageError("--val-fraction and --test-fraction must be >= 0 and sum to below 1")
    groups = group_ids(table, group_field, source)
    how = f"random by {group_field}" if group_field else "random by row"
    return random_split(groups, val_fraction, test_fraction, seed), \
        f"{how} (seed {seed}, tuning {val_fraction:g}, held_out {test_fraction:g})"


def codes_from_field(column: pa.ChunkedArray, name: str, source: str) -> np.ndarray:
    """Split codes from a split field's names (MEDS names or their synonyms)."""
    text = pc.utf8_lower(column.cast(pa.string()))
    names = list(SYNONYMS)
    index = pc.index_in(text, value_set=pa.array(names)).to_numpy(zero_copy_only=False)
    known = ~np.isnan(np.asarray(index, dtype=np.float64))
    codes = np.full(len(column), OUTSIDE, np.int8)
    codes[known] = [SYNONYMS[names[int(i)]] for i in np.asarray(index, np.float64)[known]]
    outside = int((~known).sum())
    if outside:
        log.warn(f"{source}: {outside} rows have a null or unknown '{name}' (not train, tuning "
                 "or held_out, or their synonyms val, validation, test) and are left out")
    return codes


def group_ids(table: pa.Table, group_field: str | None, source: str) -> np.ndarray:
    """A group number per row (-1 where the field is null); each row its own without a field."""
    if group_field is None:
        return np.arange(table.num_rows)
    if group_field not in table.column_names:
        raise MissingFieldError(source, group_field, table.column_names, "--group-field")
    encoded = table[group_field].combine_chunks().dictionary_encode()
    index = encoded.indices.to_numpy(zero_copy_only=False)
    return np.where(np.isnan(np.asarray(index, np.float64)), -1, index).astype(np.int64)


def random_split(groups: np.ndarray, val_fraction: float, test_fraction: float,
                 seed: int) -> np.ndarray:
    """Whole groups to held_out, tuning, train, in a seeded order, until each split holds about
    its share of the rows. Rows with group -1 (null) each form their own group."""
    groups = groups.copy()
    loose = groups < 0
    groups[loose] = groups.max(initial=-1) + 1 + np.arange(int(loose.sum()))
    ids, sizes = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    share = np.cumsum(sizes[order]) / max(len(groups), 1)
    code = np.full(len(ids), TRAIN, np.int8)
    # a group goes to the split its first row's position falls in
    start = share - sizes[order] / max(len(groups), 1)
    code[order[start < test_fraction]] = HELD_OUT
    code[order[(start >= test_fraction) & (start < test_fraction + val_fraction)]] = TUNING
    return code[np.searchsorted(ids, groups)]


def carve_tuning(codes: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Move a seeded share of the training rows (by group) to tuning, for choosing C."""
    codes = codes.copy()
    train = np.flatnonzero(codes == TRAIN)
    inner = random_split(groups[train], fraction, 0.0, seed)
    codes[train[inner == TUNING]] = TUNING
    return codes
