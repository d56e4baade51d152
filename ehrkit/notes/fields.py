"""The note text of a record batch, as every note command reads it (no heavy imports)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ehrkit.errors import DataError, MissingFieldError

SENTENCES = "sentences"


def note_text(table: pa.Table | pa.RecordBatch, field: str = "text",
              source: str = "input") -> tuple[str, pa.Array]:
    """(the field the text comes from, every row's text as strings, null where there is none):
    a string field, or a list of sentences joined with spaces. Without `text`, a `sentences`
    field is used, as `notes clean` writes both or either."""
    names = table.schema.names
    if field not in names:
        if field != "text" or SENTENCES not in names:
            raise MissingFieldError(source, field, names, "--text-field")
        field = SENTENCES
    column = table.column(names.index(field))
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_null(kind):
        return field, pa.nulls(len(column), pa.string())
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return field, pc.binary_join(column.cast(pa.list_(pa.string())), " ")
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"{source}: field '{field}' is {kind}, not text",
                        hint="choose the note text with --text-field")
    return field, column.cast(pa.string())
