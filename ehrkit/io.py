"""The record contract: read and write JSONL and Parquet, files or stdin/stdout, in Arrow batches.

Reading yields `pyarrow.RecordBatch`es whose memory is bounded by the block size, whatever the
input size. Fields a command declares get the declared type; every other field passes through.
Writing is atomic for files (temporary file, then rename) and streams to stdout.

Errors never quote record content: they name the file, the line (JSONL) or row group, and the
field, because records hold patient data.

pyarrow is imported where it is used: JSONL in and out (read_chunks(frames=True), write_encoded)
runs on polars alone, and importing pyarrow costs a short command a noticeable part of its time.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Iterator, Mapping, Sequence

from ehrkit.errors import DataError, InputFormatError, MissingFieldError, UsageError

FORMATS = ("jsonl", "parquet")
STDIO = "-"
BLOCK_BYTES = 4 << 20  # JSONL is parsed in blocks of about this many bytes
# but the first, which read_chunks parses before any worker can start: a small one lets them
# start sooner. It fixes the types of pass-through fields (later blocks must agree).
FIRST_BLOCK_BYTES = 256 << 10
PARQUET_BATCH_ROWS = 16_384
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa


# ----------------------------------------------------------------------------- formats

def format_from_name(path: str, override: str | None = None) -> str | None:
    """The format named by `override`, else by the file name; None for stdin/stdout (sniffed).

    >>> format_from_name("notes.jsonl.gz"), format_from_name("x.parquet"), format_from_name("-")
    ('jsonl', 'parquet', None)
    """
    if override:
        if override not in FORMATS:
            raise UsageError(f"unknown format '{override}'", hint="use jsonl or parquet")
        return override
    if path == STDIO:
        return None
    name = path.lower().removesuffix(".gz")
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".parquet") or name.endswith(".pq") or os.path.isdir(path):
        return "parquet"
    raise InputFormatError(
        f"{path}: unknown file format (expected .jsonl, .ndjson, .jsonl.gz, .parquet or a "
        "directory of .parquet files)", hint="name the format with --from/--to jsonl|parquet")


def _sniff(head: bytes) -> str:
    return "parquet" if head[:4] == b"PAR1" else "jsonl"


# ----------------------------------------------------------------------------- schema

@dataclass
class Schema:
    """Fields a command reads, with their Arrow types. Other fields pass through untouched.

    `text` fields must hold text: any string type is kept, anything else is cast to
    large_string (declared by name, so that a JSONL-only command need not import pyarrow).
    `required` fields must exist; `options` maps a field to the flag that renames it, so the
    error can say how to point the command at another field.
    """

    types: Mapping[str, pa.DataType] = field(default_factory=dict)
    required: Sequence[str] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    text: Sequence[str] = ()

    def check(self, source: str, names: Sequence[str]) -> None:
        for name in self.required:
            if name not in names:
                raise MissingFieldError(source, name, list(names), self.options.get(name))

    def apply(self, source: str, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Cast declared fields to their declared types."""
        import pyarrow as pa

        columns, changed = list(batch.columns), False
        fields = list(batch.schema)
        for i, f in enumerate(fields):
            want = self.types.get(f.name)
            if want is None and f.name in self.text:
                want = pa.large_string()
            if want is None or f.type == want or (_is_text(want) and _is_text(f.type)):
                continue
            try:
                columns[i] = columns[i].cast(want)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise DataError(f"{source}: field '{f.name}' has type {f.type}, expected {want}",
                                hint="fix the field's values or choose another field") from None
            fields[i], changed = pa.field(f.name, want), True
        return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields)) if changed else batch

    def apply_frame(self, source: str, frame: pl.DataFrame) -> pl.DataFrame:
        """apply() on a polars frame. Text fields that are strings already need nothing; any
        other case goes through Arrow and apply(), so the types are exactly apply()'s."""
        import polars as pl

        if not self.types and all(frame.schema.get(name, pl.String) == pl.String
                                  for name in self.text):
            return frame
        frame = pl.from_arrow(self.apply(source, one_batch(frame.to_arrow())))
        return frame if isinstance(frame, pl.DataFrame) else frame.to_frame()


def _is_text(t: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


# ----------------------------------------------------------------------------- reading

def _open_input(path: str, override: str | None) -> tuple[str, IO[bytes], str]:
    """Open one input; return (format, binary stream, display name)."""
    if path == STDIO:
        stream: IO[bytes] = sys.stdin.buffer
        head = stream.peek(4)[:4] if hasattr(stream, "peek") else b""
        if head[:2] == b"\x1f\x8b":
            stream, head = gzip.GzipFile(fileobj=stream), b""
            head = stream.peek(4)[:4]
        return override or _sniff(head), stream, "<stdin>"
    fmt = format_from_name(path, override)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file or directory")
    if fmt == "parquet":
        return fmt, None, path  # type: ignore[return-value]
    raw = open(path, "rb")
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return fmt, gzip.GzipFile(fileobj=raw), path
    return fmt, raw, path


@dataclass
class JsonlBlock:
    """Lines of a JSONL input not yet parsed: parsing can happen in a worker.

    `known`: the types of the input's first block (Arrow or polars), imposed on this one."""

    data: bytes
    source: str
    first_line: int
    known: pa.Schema | pl.Schema | None
    schema: Schema

    def parse(self) -> pa.RecordBatch | None:
        frame = self._checked()
        return None if frame is None else self.schema.apply(self.source, one_batch(frame.to_arrow()))

    def frame(self) -> pl.DataFrame | None:
        """The block as a polars frame, without going through Arrow."""
        frame = self._checked()
        return None if frame is None else self.schema.apply_frame(self.source, frame)

    def _checked(self) -> pl.DataFrame | None:
        """Parsed, and checked for the required fields; types not yet applied."""
        frame = _parse_jsonl_block(self.data, self.source, self.first_line, self.known)
        if frame is not None:
            self.schema.check(self.source, frame.columns)
        return frame


def read_chunks(paths: Sequence[str] | str = STDIO, fmt: str | None = None,
                schema: Schema | None = None, frames: bool = False
                ) -> Iterator[pa.RecordBatch | pl.DataFrame | JsonlBlock]:
    """Like read_batches, but JSONL blocks after the first come unparsed (`JsonlBlock`), so
    parallel commands can parse them in their workers. The first block of each input is parsed
    here: it fixes the types of pass-through fields and is checked for required fields.
    With `frames`, that first block is a polars DataFrame, for workers that parse with
    JsonlBlock.frame(): JSONL is then read without pyarrow."""
    schema = schema or Schema()
    for path in [paths] if isinstance(paths, str) else (paths or [STDIO]):
        kind, stream, name = _open_input(path, fmt)
        try:
            if kind == "parquet":
                yield from _checked(_parquet_batches(path, name), name, schema)
                continue
            known = None
            for first_line, data in _blocks(stream, min(FIRST_BLOCK_BYTES, BLOCK_BYTES),
                                            BLOCK_BYTES):
                block = JsonlBlock(data, name, first_line, known, schema)
                if known is not None:
                    yield block
                    continue
                parsed = block.frame() if frames else block.parse()
                if parsed is not None:
                    known = parsed.schema
                    yield parsed
        finally:
            if stream is not None and stream is not sys.stdin.buffer:
                stream.close()


def read_batches(paths: Sequence[str] | str = STDIO, fmt: str | None = None,
                 schema: Schema | None = None) -> Iterator[pa.RecordBatch]:
    """Yield record batches from every input in turn (default: stdin)."""
    for chunk in read_chunks(paths, fmt, schema):
        batch = chunk.parse() if isinstance(chunk, JsonlBlock) else chunk
        if batch is not None and batch.num_rows:
            yield batch


def _checked(batches: Iterator[pa.RecordBatch], name: str, schema: Schema):
    checked = False
    for batch in batches:
        if not checked:
            schema.check(name, batch.schema.names)
            checked = True
        if batch.num_rows:
            yield schema.apply(name, batch)


def one_batch(table: pa.Table) -> pa.RecordBatch:
    """A table as one record batch (an empty one keeps the table's schema)."""
    import pyarrow as pa

    return table.combine_chunks().to_batches()[0] if table.num_rows else \
        pa.RecordBatch.from_pylist([], schema=table.schema)


def read_table(paths: Sequence[str] | str = STDIO, fmt: str | None = None,
               schema: Schema | None = None) -> pa.Table:
    """Everything at once, for commands that must see all records (say so in their help)."""
    import pyarrow as pa

    batches = list(read_batches(paths, fmt, schema))
    if not batches:
        return pa.table({})
    if len({b.schema for b in batches}) == 1:
        return pa.Table.from_batches(batches)
    # Batches differ (a field null in one block, typed in the next): cast each to the union.
    return pa.concat_tables([pa.Table.from_batches([b]) for b in batches],
                            promote_options="permissive")



def _blocks(stream: IO[bytes], first_size: int, size: int) -> Iterator[tuple[int, bytes]]:
    """Split a byte stream into blocks of whole lines, the first of about `first_size` bytes
    and the others of about `size`; yield (first line number, block)."""
    line = 1
    while True:
        block = stream.read(first_size if line == 1 else size)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += stream.readline()
        yield line, block
        line += block.count(b"\n")


def _parse_jsonl_block(block: bytes, name: str, first_line: int,
                       known: pa.Schema | pl.Schema | None) -> pl.DataFrame | None:
    """Parse one block of JSONL lines; `known` fixes the types found in earlier blocks."""

    if first_line == 1 and block.lstrip()[:1] == b"[":
        raise InputFormatError(f"{name}: line 1: input is a JSON array, not JSON Lines",
                               hint="convert it with: jq -c '.[]' FILE")
    if not block.isascii():
        _check_utf8(block, name, first_line)
    if not block or block.isspace():  # as `not block.strip()`, without copying the block
        return None
    import polars as pl

    # polars, not pyarrow.json: pyarrow turns date-like strings into timestamps, which would
    # change pass-through fields. Types seen in earlier blocks are imposed on later ones, but
    # for whole numbers: JSON has one kind of number, and a later block may hold 1.5 where the
    # first held only 1, 2, 3. Those fields are inferred per block and checked to be numbers.
    overrides = None
    if known is not None:
        known = _polars_schema(known)
        overrides = {k: v for k, v in known.items() if v != pl.Null and not v.is_integer()}
    try:
        frame = pl.read_ndjson(io.BytesIO(block), schema_overrides=overrides,
                               infer_schema_length=None)
    except pl.exceptions.PolarsError:
        raise _diagnose_jsonl(block, name, first_line, known) from None
    if _maybe_stringified(frame) or _not_numbers(frame, known):
        conflict = _first_bad_line(block, name, first_line, known)
        if conflict is not None:
            raise conflict
    return frame


def _polars_schema(known: pa.Schema | pl.Schema) -> pl.Schema:
    import polars as pl

    # pl.from_arrow imports pandas (when installed): only for an Arrow schema (read_batches)
    return known if isinstance(known, pl.Schema) else pl.from_arrow(known.empty_table()).schema


# What polars makes of a number, boolean, array or object in a field that also holds strings.
_STRINGIFIED = r"(?s)^(?:-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|\[.*\]|\{.*\})$"


def _maybe_stringified(frame) -> bool:
    """Whether a string field may hold values of other JSON types that polars turned into text
    (1 becomes "1"). Cheap and vectorised; a hit is confirmed line by line."""
    import polars as pl

    # select_seq: select() runs on polars' thread pool, which parallel commands make smaller
    # than their own worker threads (notes.threads), so the workers would queue for it.
    hits = frame.select_seq(pl.col(pl.String).str.contains(_STRINGIFIED).any())
    return hits.width > 0 and any(hits.row(0))


def _not_numbers(frame, known: pl.Schema | None) -> bool:
    """Whether a field of whole numbers in earlier blocks holds something else in this one."""
    import polars as pl

    return known is not None and any(
        t.is_integer() and not (frame.schema.get(n, pl.Null).is_numeric()
                                or frame.schema.get(n) == pl.Null)
        for n, t in known.items())


def _check_utf8(block: bytes, name: str, first_line: int) -> None:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + block.count(b"\n", 0, exc.start)
        raise InputFormatError(f"{name}: line {line}: invalid UTF-8 byte",
                               hint="re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                               ) from None


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _polars_kind(t: pl.DataType) -> str:
    """The JSON kind of a polars type, as the same type converted to Arrow would have."""
    import polars as pl

    if t == pl.Boolean:
        return "boolean"
    if t.is_numeric():
        return "number"
    if t == pl.String or t.is_temporal():
        return "string"
    if t == pl.List:
        return "array"
    return "object" if t == pl.Struct else "null"


def _diagnose_jsonl(block: bytes, name: str, first_line: int, known: pl.Schema | None) -> DataError:
    """Find the line that broke a block, and say what is wrong without quoting it."""
    error = _first_bad_line(block, name, first_line, known)
    if error is not None:
        return error
    last = first_line + block.count(b"\n")
    return InputFormatError(f"{name}: lines {first_line}-{last}: records could not be parsed as "
                            "JSON Lines")


def _first_bad_line(block: bytes, name: str, first_line: int,
                    known: pl.Schema | None) -> DataError | None:
    seen: dict[str, str] = {n: _polars_kind(t) for n, t in (known or {}).items()}
    for offset, raw in enumerate(block.split(b"\n")):
        line = first_line + offset
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            return InputFormatError(f"{name}: line {line}: malformed JSON at column {exc.colno}: "
                                    f"{exc.msg}", hint="each line must hold one JSON object")
        if not isinstance(record, dict):
            return InputFormatError(f"{name}: line {line}: expected a JSON object, found "
                                    f"{_json_kind(record)}", hint="each line must hold one JSON object")
        for key, value in record.items():
            kind = _json_kind(value)
            if kind == "null":
                continue
            if seen.get(key, "null") not in ("null", kind):
                return DataError(f"{name}: line {line}: field '{key}' is {kind} but earlier "
                                 f"records have {seen[key]}",
                                 hint="give the field one JSON type in every record")
            seen[key] = kind
    return None


def _parquet_files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).rglob("*.parquet"))
        if not files:
            raise InputFormatError(f"{path}: directory holds no .parquet files")
        return files
    return [path]


def _parquet_batches(path: str, name: str) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    if path == STDIO:  # Parquet needs random access: spool stdin to a temporary file
        with tempfile.TemporaryFile() as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.seek(0)
            yield from _parquet_file_batches(pq, spool, name)
        return
    for file in _parquet_files(path):
        yield from _parquet_file_batches(pq, file, file)


def _parquet_file_batches(pq, source, name: str) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    try:
        reader = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError):
        raise InputFormatError(f"{name}: not a readable Parquet file",
                               hint="name the input format with --from") from None
    if reader.metadata.num_rows == 0:
        yield pa.RecordBatch.from_pylist([], schema=reader.schema_arrow)
        return
    yield from reader.iter_batches(batch_size=PARQUET_BATCH_ROWS)


# ----------------------------------------------------------------------------- writing

@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Works for files and directories: on any failure, Ctrl-C included, nothing is left behind.
    """
    target = Path(path)
    if _is_stream(target):
        # renaming a file onto /dev/null would replace the device itself
        raise UsageError(f"{target}: a device or pipe cannot be written atomically; give a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)  # the caller creates the file or directory itself
    try:
        yield tmp
        if target.is_dir() and Path(tmp).is_dir():
            old = tmp + ".old"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_artifact(path: str | os.PathLike, data: dict, indent: int | None = None) -> None:
    """A versioned JSON artifact (normaliser, probe...), written atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")


def read_json_artifact(path: str | os.PathLike, fmt: str, version: int, what: str,
                       hint: str) -> dict:
    """The payload of a JSON artifact written by `write_json_artifact`, checked to be of this
    format and version; anything else is an InputFormatError naming the file (never its data)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFormatError(f"{path}: not a readable {what} ({type(exc).__name__})",
                               hint=hint) from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise InputFormatError(f"{path}: not an ehrkit {what}", hint=hint)
    if data.get("version") != version:
        raise InputFormatError(f"{path}: {what} version {data.get('version')} is not "
                               f"supported (this ehrkit reads version {version})")
    return data


def output_format(path: str, override: str | None) -> str:
    if override or path != STDIO:
        if not override and _is_stream(path):
            return "jsonl"  # /dev/null, /dev/stdout, a named pipe: as stdout
        return format_from_name(path, override) or "jsonl"
    return "jsonl"


def _is_stream(path: str) -> bool:
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


class RecordWriter:
    """Writes record batches to a file (atomically) or stdout, as JSONL or Parquet.

    Use as a context manager: the file appears only when the block ends without an error.
    `schema` is what an empty output is written with.
    """

    def __init__(self, path: str = STDIO, fmt: str | None = None, schema: pa.Schema | None = None):
        self.path, self.format = path, output_format(path, fmt)
        self.empty_schema = schema  # None: no fields
        self.rows = 0
        self._atomic = None
        self._stream: IO[bytes] | None = None
        self._parquet = None
        self._schema: pa.Schema | None = None

    def __enter__(self) -> "RecordWriter":
        if self.path == STDIO:
            self._stream = sys.stdout.buffer
        else:
            if _is_stream(self.path):  # /dev/null, a pipe: written in place, never renamed onto
                raw = open(self.path, "wb")
            else:
                self._atomic = atomic_path(self.path)
                raw = open(self._atomic.__enter__(), "wb")
            gz = self.format == "jsonl" and self.path.endswith(".gz")
            self._stream = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) if gz else raw
            self._raw = raw
        return self

    def write(self, records) -> None:
        """Write a pyarrow RecordBatch or Table, or a polars DataFrame."""
        table = _as_table(records)
        if table.num_rows == 0 and self.format == "jsonl":
            return
        self.rows += table.num_rows
        if self.format == "jsonl":
            self._write_jsonl(table)
        else:
            self._write_parquet(table)

    def _write_jsonl(self, table: pa.Table) -> None:
        self.write_encoded(encode_jsonl(table), 0)

    def write_encoded(self, data: bytes | memoryview, rows: int) -> None:
        """Write JSONL lines encoded elsewhere (by a worker process, with encode_jsonl)."""
        if self.format != "jsonl":
            raise ValueError("pre-encoded records need JSONL output")
        self.rows += rows
        self._stream.write(data)
        if self.path == STDIO:
            self._stream.flush()

    def _write_parquet(self, table: pa.Table) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._parquet is None:
            # ehrkit's own schema metadata (label names, ...) is kept; other libraries' (pandas)
            # would describe the input's columns, not these
            ours = {k: v for k, v in (table.schema.metadata or {}).items()
                    if k.startswith(b"ehrkit.")}
            self._schema = pa.schema([pa.field(f.name, pa.string()) if f.type == pa.null() else f
                                      for f in table.schema], metadata=ours or None)
            self._gate = _Gate(self._stream)
            sink = pa.PythonFile(self._gate, mode="w")
            self._parquet = pq.ParquetWriter(sink, self._schema, compression="zstd")
        self._parquet.write_table(_conform(table, self._schema, self.path))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        except BaseException as failure:  # a failed close must not publish the file either
            exc_type, exc, tb = type(failure), failure, failure.__traceback__
            raise
        finally:
            if exc_type is not None:
                self._abandon()
            if self._atomic is not None:
                self._atomic.__exit__(exc_type, exc, tb)

    def _finish(self) -> None:
        if self.format == "parquet" and self._parquet is None:
            import pyarrow as pa

            self._write_parquet((self.empty_schema or pa.schema([])).empty_table())
        if self._parquet is not None:
            self._parquet.close()
        self._close_stream()

    def _abandon(self) -> None:
        # No Parquet footer after a failure: a truncated file must not read as complete, and
        # the writer must not try to write it later when garbage-collected.
        if self._parquet is not None:
            self._gate.open = False
            self._parquet.is_open = False
            self._parquet = None
        try:
            self._close_stream()
        except OSError:
            pass

    def _close_stream(self) -> None:
        if self._stream is None:
            return
        if self.path == STDIO:
            self._stream.flush()
            return
        self._stream.close()
        if self._stream is not self._raw:
            self._raw.close()


class _Gate:
    """A stream that can be shut: Arrow's Parquet writer writes its footer when it is destroyed,
    even after a failure, which would make a truncated output on stdout look complete."""

    def __init__(self, stream: IO[bytes]):
        self.stream, self.open = stream, True

    def write(self, data) -> int:
        return self.stream.write(data) if self.open else len(data)

    def flush(self) -> None:
        if self.open:
            self.stream.flush()

    @property
    def closed(self) -> bool:
        return not self.open or self.stream.closed


def encode_jsonl(records) -> bytes:
    """Records as JSON Lines bytes."""
    import polars as pl

    frame = pl.from_arrow(_as_table(records), rechunk=False)
    buffer = io.BytesIO()
    frame.write_ndjson(buffer)
    return buffer.getvalue()


def _as_table(records) -> pa.Table:
    import pyarrow as pa

    if isinstance(records, pa.Table):
        return records
    if isinstance(records, pa.RecordBatch):
        return pa.Table.from_batches([records])
    if hasattr(records, "to_arrow"):
        return records.to_arrow()
    raise TypeError(f"cannot write {type(records).__name__} as records")


def _conform(table: pa.Table, schema: pa.Schema, path: str) -> pa.Table:
    """Match a later batch to the Parquet file's schema: same columns, same types."""
    import pyarrow as pa

    if table.schema.equals(schema):
        return table
    extra = [n for n in table.schema.names if n not in schema.names]
    if extra:
        raise DataError(f"{path}: field '{extra[0]}' first appears after the first batch",
                        hint="Parquet needs every field in the first records; write JSONL instead")
    columns = []
    for f in schema:
        if f.name not in table.schema.names:
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        try:
            columns.append(table[f.name].cast(f.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(f"{path}: field '{f.name}' changes type from {f.type} to "
                            f"{table.schema.field(f.name).type}",
                            hint="give the field one type in every record") from None
    return pa.Table.from_arrays(columns, schema=schema)
