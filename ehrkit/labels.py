"""Label specs shared by the commands that name labels (`pretrain --labels`, `probe
--label-field`): a field (`mortality`), a whole list field (`phenotypes`: one label per
position) or part of one (`phenotypes[:20]`, `phenotypes[20:]`, `phenotypes[3]`)."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ehrkit.errors import DataError, MissingFieldError, UsageError

_SPEC = re.compile(r"^(?P<field>[^\[\]]+?)(\[(?P<start>-?\d*)(?P<colon>:?)(?P<stop>-?\d*)\])?$")


def parse_spec(spec: str, option: str = "--label-field") -> tuple[str, slice | int | None]:
    """('phenotypes', slice(None, 20)) for 'phenotypes[:20]'.

    >>> parse_spec("phenotypes[:20]"), parse_spec("mortality"), parse_spec("p[3]")
    (('phenotypes', slice(None, 20, None)), ('mortality', None), ('p', 3))
    """
    match = _SPEC.match(spec.strip())
    if not match:
        raise UsageError(f"{option}: cannot read '{spec}'",
                         hint="use FIELD, FIELD[i] or FIELD[a:b]")
    if match["start"] is None or not (match["start"] or match["colon"] or match["stop"]):
        return match["field"], None
    if match["colon"]:
        return match["field"], slice(int(match["start"]) if match["start"] else None,
                                     int(match["stop"]) if match["stop"] else None)
    return match["field"], int(match["start"])


def is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def label_columns(table: pa.Table, specs: list[str], source: str,
                  option: str = "--label-field") -> list[tuple[str, str, int | None, pa.ChunkedArray]]:
    """(label name, field, list index or None, column) per label."""
    out = []
    for spec in specs:
        name, part = parse_spec(spec, option)
        if name not in table.column_names:
            raise MissingFieldError(source, name, table.column_names, option)
        column = table[name]
        if not is_list(column.type):
            if part is not None:
                raise UsageError(f"{option} {spec}: field '{name}' is not a list")
            out.append((name, name, None, column))
            continue
        width = list_width(column, name, source)
        positions = list(range(width))
        if isinstance(part, slice):
            positions = positions[part]
        elif part is not None:
            positions = [positions[_in_range(part, width, f"{option} {spec}")]]
        for i in positions:
            out.append((f"{name}[{i}]", name, i, item(column, i, width)))
    return out


def item(column: pa.ChunkedArray, index: int, width: int) -> pa.ChunkedArray:
    """Item `index` of every row's list (all lists have `width` items)."""
    flat = pc.list_flatten(column.combine_chunks())
    return pa.chunked_array([flat.take(pa.array(np.arange(len(column), dtype=np.int64) * width
                                                + index))])


def _in_range(i: int, width: int, spec: str) -> int:
    if not -width <= i < width:
        raise UsageError(f"{spec}: the list has {width} items")
    return i


def list_width(column: pa.ChunkedArray, name: str, source: str) -> int:
    if column.null_count:
        raise DataError(f"{source}: field '{name}' is null in {column.null_count} rows",
                        hint="give every row the list (null items mark unknown labels)")
    lengths = pc.list_value_length(column)
    low, high = pc.min(lengths).as_py(), pc.max(lengths).as_py()
    if low != high:
        raise DataError(f"{source}: field '{name}' holds lists of different lengths "
                        f"({low} to {high})", hint="every row needs one item per label")
    return int(high or 0)
