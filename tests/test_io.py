"""The record contract (DESIGN.md section 2): formats, sniffing, round trips, pass-through,
declared types, bounded streaming, atomic outputs and empty inputs."""

from __future__ import annotations

import datetime
import gzip
import io
import json
import os
import sys
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit import io as rio
from ehrkit.errors import DataError, InputFormatError, MissingFieldError, UsageError

RECORDS = [
    {"id": 1, "text": "Pt seen.", "tags": ["x", None, "y"], "nums": [[1, 2], [], None],
     "meta": {"k": "v", "n": None}, "opt": None, "score": 0.5, "flag": True,
     "chartdate": "2148-10-25"},
    {"id": 2, "text": "Stable.", "tags": None, "nums": [[3]], "meta": {"k": None, "n": 2},
     "opt": "z", "score": None, "flag": False, "chartdate": "2148-10-26T01:02:03"},
]


def many_notes(n: int) -> list[dict]:
    return [{"id": i, "text": f"Note number {i}. It has two sentences.", "unit": f"U{i % 7}",
             "charttime": f"2150-01-{1 + i % 28:02d} 08:00:00"} for i in range(n)]


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BufferedReader(io.BytesIO(data))))


def _stdout(monkeypatch) -> io.BytesIO:
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(buffer=buffer, flush=lambda: None))
    return buffer


def _parquet_bytes(records) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), sink)
    return sink.getvalue()


# ----------------------------------------------------------------------------- formats

@pytest.mark.parametrize("name, expected", [
    ("notes.jsonl", "jsonl"), ("NOTES.JSONL", "jsonl"), ("notes.ndjson", "jsonl"),
    ("notes.jsonl.gz", "jsonl"), ("notes.ndjson.gz", "jsonl"), ("notes.parquet", "parquet"),
    ("-", None),
])
def test_format_from_extension(name, expected):
    assert rio.format_from_name(name) == expected


def test_a_directory_is_parquet(tmp_path):
    (tmp_path / "parts").mkdir()
    assert rio.format_from_name(str(tmp_path / "parts")) == "parquet"


@pytest.mark.parametrize("name, override", [
    ("notes.txt", "jsonl"), ("notes.parquet", "jsonl"), ("notes.jsonl", "parquet"),
    ("-", "parquet"), ("-", "jsonl"),
])
def test_override_wins_over_extension(name, override):
    assert rio.format_from_name(name, override) == override


def test_unknown_extension_names_the_override_option():
    with pytest.raises(InputFormatError) as caught:
        rio.format_from_name("notes.txt")
    assert caught.value.message.startswith("notes.txt: unknown file format")
    assert "--from" in caught.value.hint
    assert caught.value.exit_code == 1


def test_unknown_override_is_a_usage_error():
    with pytest.raises(UsageError) as caught:
        rio.format_from_name("notes.jsonl", "csv")
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("path, override, expected", [
    ("-", None, "jsonl"), ("-", "parquet", "parquet"), ("out.parquet", None, "parquet"),
    ("out.parquet", "jsonl", "jsonl"), ("out.jsonl.gz", None, "jsonl"), ("out.dat", "parquet", "parquet"),
])
def test_output_format(path, override, expected):
    assert rio.output_format(path, override) == expected


# ----------------------------------------------------------------------------- sniffing stdin

def test_stdin_jsonl_is_sniffed(monkeypatch):
    _stdin(monkeypatch, b"".join(json.dumps(r).encode() + b"\n" for r in RECORDS))
    assert rio.read_table().to_pylist() == RECORDS


def test_stdin_gzip_is_sniffed(monkeypatch):
    _stdin(monkeypatch, gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in RECORDS)))
    assert rio.read_table("-").to_pylist() == RECORDS


def test_stdin_parquet_is_sniffed_by_magic(monkeypatch):
    data = _parquet_bytes(RECORDS)
    assert data[:4] == b"PAR1"
    _stdin(monkeypatch, data)
    assert rio.read_table(["-"]).to_pylist() == RECORDS


def test_stdin_override_beats_sniffing(monkeypatch):
    _stdin(monkeypatch, _parquet_bytes(RECORDS))
    with pytest.raises(InputFormatError):  # Parquet bytes read as JSONL: not valid UTF-8/JSON
        rio.read_table("-", fmt="jsonl")


# ----------------------------------------------------------------------------- round trips

def test_jsonl_parquet_jsonl_round_trip_keeps_nested_lists_and_nulls(tmp_path, jsonl_file):
    source = jsonl_file("in.jsonl", RECORDS)
    with rio.RecordWriter(str(tmp_path / "mid.parquet")) as out:
        out.write(rio.read_table(str(source)))
    assert pq.read_table(tmp_path / "mid.parquet").to_pylist() == RECORDS
    with rio.RecordWriter(str(tmp_path / "back.jsonl")) as out:
        for batch in rio.read_batches(str(tmp_path / "mid.parquet")):
            out.write(batch)
    lines = (tmp_path / "back.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == RECORDS
    assert lines[0] == json.dumps(RECORDS[0], separators=(",", ":"))


def test_gzip_jsonl_round_trip(tmp_path):
    path = str(tmp_path / "notes.jsonl.gz")
    with rio.RecordWriter(path) as out:
        out.write(pa.Table.from_pylist(RECORDS))
    raw = (tmp_path / "notes.jsonl.gz").read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert [json.loads(line) for line in gzip.decompress(raw).splitlines()] == RECORDS
    assert rio.read_table(path).to_pylist() == RECORDS


def test_parquet_round_trip_keeps_types(tmp_path):
    table = pa.table({
        "id": pa.array([1, 2], pa.int32()),
        "when": pa.array([datetime.datetime(2150, 1, 1, 5), None], pa.timestamp("ms")),
        "codes": pa.array([[1, None, 3], None], pa.list_(pa.int16())),
        "score": pa.array([0.25, None], pa.float32()),
    })
    pq.write_table(table, tmp_path / "in.parquet")
    with rio.RecordWriter(str(tmp_path / "out.parquet")) as out:
        for batch in rio.read_batches(str(tmp_path / "in.parquet")):
            out.write(batch)
    back = pq.read_table(tmp_path / "out.parquet")
    assert back.schema == table.schema
    assert back.to_pylist() == table.to_pylist()


def test_several_inputs_are_read_in_order(tmp_path, jsonl_file):
    first = jsonl_file("a.jsonl", RECORDS[:1])
    pq.write_table(pa.Table.from_pylist(RECORDS[1:]), tmp_path / "b.parquet")
    third = jsonl_file("c.ndjson", RECORDS[:1])
    table = rio.read_table([str(first), str(tmp_path / "b.parquet"), str(third)])
    assert table.to_pylist() == [RECORDS[0], RECORDS[1], RECORDS[0]]


def test_a_directory_of_parquet_files_is_read_in_name_order(tmp_path):
    notes = many_notes(30)
    (tmp_path / "parts").mkdir()
    for k in range(3):
        part = pa.Table.from_pylist(notes[10 * k: 10 * (k + 1)])
        pq.write_table(part, tmp_path / "parts" / f"part-{k}.parquet")
    assert rio.read_table(str(tmp_path / "parts")).to_pylist() == notes


def test_an_empty_directory_is_an_error(tmp_path):
    (tmp_path / "parts").mkdir()
    with pytest.raises(InputFormatError, match="holds no .parquet files"):
        rio.read_table(str(tmp_path / "parts"))


def test_a_missing_input_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        rio.read_table(str(tmp_path / "absent.jsonl"))


def test_date_like_strings_stay_strings(tmp_path, jsonl_file):
    source = jsonl_file("in.jsonl", [{"d": "2148-10-25", "t": "2148-10-25 10:00:00",
                                      "z": "2148-10-25T10:00:00Z"}])
    table = rio.read_table(str(source))
    assert all(pa.types.is_large_string(t) or pa.types.is_string(t) for t in table.schema.types)
    assert table.to_pylist() == [{"d": "2148-10-25", "t": "2148-10-25 10:00:00",
                                  "z": "2148-10-25T10:00:00Z"}]


def test_pass_through_fields_are_unchanged_by_notes_clean(ehrkit, tmp_path, jsonl_file):
    records = [dict(r, admit="2148-10-25", ts="2148-10-25T10:00:00Z", big=2**53 + 1)
               for r in RECORDS]
    jsonl_file("in.jsonl", records)
    done = ehrkit("notes", "clean", "in.jsonl", "-o", "out.jsonl")
    assert done.returncode == 0, done.stderr
    out = (tmp_path / "out.jsonl").read_text()
    assert out.count('"admit":"2148-10-25"') == 2
    assert out.count('"ts":"2148-10-25T10:00:00Z"') == 2
    assert out.count('"chartdate":"2148-10-25"') == 1
    assert out.count(f'"big":{2**53 + 1}') == 2
    back = [json.loads(line) for line in out.splitlines()]
    assert [set(r) for r in back] == [set(r) | {"sentences"} for r in records]
    for got, want in zip(back, records):
        assert {k: v for k, v in got.items() if k not in ("text", "sentences")} == \
            {k: v for k, v in want.items() if k != "text"}


# ----------------------------------------------------------------------------- declared types

def test_declared_types_are_applied_and_other_fields_pass_through(tmp_path, jsonl_file):
    source = jsonl_file("in.jsonl", [{"score": 1, "text": "a", "n": 3}, {"score": 2, "text": "b", "n": 4}])
    schema = rio.Schema(types={"score": pa.float32(), "text": pa.large_string()})
    table = rio.read_table(str(source), schema=schema)
    assert table.schema.field("score").type == pa.float32()
    assert table.schema.field("n").type == pa.int64()
    assert table.to_pylist() == [{"score": 1.0, "text": "a", "n": 3}, {"score": 2.0, "text": "b", "n": 4}]


def test_declared_types_do_not_depend_on_the_first_batch(tmp_path, monkeypatch):
    rows = [{"score": i} for i in range(200)] + [{"score": i + 0.5} for i in range(200)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(rio, "BLOCK_BYTES", 256)
    batches = list(rio.read_batches(str(path), schema=rio.Schema(types={"score": pa.float64()})))
    assert len(batches) > 5
    assert {b.schema.field("score").type for b in batches} == {pa.float64()}
    assert [v for b in batches for v in b.column("score").to_pylist()] == [r["score"] for r in rows]


def test_a_value_that_does_not_fit_the_declared_type_names_the_field(tmp_path, jsonl_file):
    source = jsonl_file("in.jsonl", [{"score": "high ZZMARKER-7f3a"}])
    with pytest.raises(DataError) as caught:
        rio.read_table(str(source), schema=rio.Schema(types={"score": pa.float32()}))
    assert "field 'score'" in caught.value.message
    assert "ZZMARKER" not in caught.value.message


def test_a_missing_required_field_lists_the_fields_and_the_option(tmp_path, jsonl_file):
    source = jsonl_file("in.jsonl", [{"id": 1, "body": "x"}])
    schema = rio.Schema(required=["text"], options={"text": "--text-field"})
    with pytest.raises(MissingFieldError) as caught:
        rio.read_table(str(source), schema=schema)
    assert caught.value.message == f"{source}: field 'text' not found; fields present: id, body"
    assert caught.value.hint == "choose another field with --text-field"


# ----------------------------------------------------------------------------- streaming

def test_jsonl_streams_in_bounded_batches(tmp_path, monkeypatch, jsonl_file):
    notes = many_notes(2000)
    source = str(jsonl_file("in.jsonl", notes))
    whole = rio.read_table(source)
    monkeypatch.setattr(rio, "BLOCK_BYTES", 4096)
    batches = list(rio.read_batches(source))
    assert len(batches) >= (tmp_path / "in.jsonl").stat().st_size // 4096
    assert max(b.num_rows for b in batches) < 60  # a 4 KiB block holds about 35 of these lines
    assert pa.Table.from_batches(batches).to_pylist() == whole.to_pylist() == notes


def test_gzip_jsonl_streams_in_bounded_batches(tmp_path, monkeypatch):
    notes = many_notes(500)
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in notes).encode()))
    monkeypatch.setattr(rio, "BLOCK_BYTES", 2048)
    batches = list(rio.read_batches(str(path)))
    assert len(batches) > 20
    assert [r for b in batches for r in b.to_pylist()] == notes


def test_parquet_streams_in_bounded_batches(tmp_path, monkeypatch):
    notes = many_notes(1000)
    pq.write_table(pa.Table.from_pylist(notes), tmp_path / "in.parquet")
    monkeypatch.setattr(rio, "PARQUET_BATCH_ROWS", 64)
    batches = list(rio.read_batches(str(tmp_path / "in.parquet")))
    assert len(batches) == 16 and max(b.num_rows for b in batches) == 64
    assert [r for b in batches for r in b.to_pylist()] == notes


def test_read_chunks_leaves_later_blocks_unparsed(tmp_path, monkeypatch, jsonl_file):
    source = str(jsonl_file("in.jsonl", many_notes(300)))
    monkeypatch.setattr(rio, "BLOCK_BYTES", 2048)
    chunks = list(rio.read_chunks(source))
    assert isinstance(chunks[0], pa.RecordBatch)
    assert len(chunks) > 5 and all(isinstance(c, rio.JsonlBlock) for c in chunks[1:])
    parsed = [chunks[0]] + [c.parse() for c in chunks[1:]]
    assert {b.schema for b in parsed} == {chunks[0].schema}
    assert [r for b in parsed for r in b.to_pylist()] == many_notes(300)


def test_line_numbers_are_exact_across_blocks(tmp_path, monkeypatch):
    lines = [json.dumps(r) for r in many_notes(400)]
    lines[356] = '{"id": 356, "text": "ZZMARKER-7f3a'  # line 357 is cut short
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(rio, "BLOCK_BYTES", 1000)
    with pytest.raises(InputFormatError) as caught:
        list(rio.read_batches(str(tmp_path / "in.jsonl")))
    assert caught.value.message.startswith(f"{tmp_path / 'in.jsonl'}: line 357: malformed JSON")
    assert "ZZMARKER" not in caught.value.message


@pytest.mark.parametrize("block_bytes", [100, rio.BLOCK_BYTES])
def test_a_type_conflict_is_an_error_within_and_across_blocks(tmp_path, monkeypatch, block_bytes):
    rows = [{"id": i, "text": "t"} for i in range(20)] + [{"id": "x20", "text": "t"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(rio, "BLOCK_BYTES", block_bytes)
    with pytest.raises(DataError) as caught:
        list(rio.read_batches(str(tmp_path / "in.jsonl")))
    assert caught.value.message == (f"{tmp_path / 'in.jsonl'}: line 21: field 'id' is string "
                                    "but earlier records have number")


def test_a_fraction_after_blocks_of_whole_numbers_is_still_a_number(tmp_path, monkeypatch):
    """JSON has one kind of number: 1, 2, 3 in the first block and 1.5 in a later one is no
    conflict (it used to fail the whole input), nor is a later block without the field."""
    rows = [{"id": i, "x": i, "text": "t"} for i in range(40)] + [{"id": 40, "x": 1.5, "text": "t"}]
    rows += [{"id": 41, "text": "t"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(rio, "BLOCK_BYTES", 200)
    batches = list(rio.read_batches(str(tmp_path / "in.jsonl")))
    assert batches[0].schema.field("x").type == pa.int64()
    assert [r.get("x") for b in batches for r in b.to_pylist()] == [r.get("x") for r in rows]
    assert rio.read_table(str(tmp_path / "in.jsonl")).column("x").to_pylist() == \
        [float(r["x"]) if "x" in r else None for r in rows]
    frames = [c.frame() if isinstance(c, rio.JsonlBlock) else c
              for c in rio.read_chunks(str(tmp_path / "in.jsonl"), frames=True)]
    assert [r.get("x") for f in frames for r in f.to_dicts()] == [r.get("x") for r in rows]


def test_a_later_block_cannot_widen_a_parquet_output(tmp_path, monkeypatch):
    rows = [{"x": i} for i in range(40)] + [{"x": 1.5}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(rio, "BLOCK_BYTES", 100)
    with pytest.raises(DataError, match="field 'x' changes type from int64 to double"), \
            rio.RecordWriter(str(tmp_path / "out.parquet")) as out:
        for batch in rio.read_batches(str(tmp_path / "in.jsonl")):
            out.write(batch)
    assert os.listdir(tmp_path) == ["in.jsonl"]


def test_numeric_looking_strings_are_not_a_type_conflict(tmp_path, jsonl_file):
    rows = [{"id": "007", "v": "true", "w": "[1]"}, {"id": "x", "v": "no", "w": "{}"}]
    assert rio.read_table(str(jsonl_file("in.jsonl", rows))).to_pylist() == rows


# ----------------------------------------------------------------------------- atomic outputs

@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.parquet"])
def test_an_exception_inside_the_writer_leaves_nothing(tmp_path, name):
    with pytest.raises(RuntimeError, match="boom"), rio.RecordWriter(str(tmp_path / name)) as out:
        out.write(pa.Table.from_pylist(RECORDS))
        assert len(os.listdir(tmp_path)) == 1  # the temporary file, while writing
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["out.jsonl", "out.parquet"])
def test_an_existing_output_is_replaced_only_on_success(tmp_path, name):
    target = tmp_path / name
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), rio.RecordWriter(str(target)) as out:
        out.write(pa.Table.from_pylist(RECORDS))
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == [name]
    with rio.RecordWriter(str(target)) as out:
        out.write(pa.Table.from_pylist(RECORDS))
    assert os.listdir(tmp_path) == [name]
    written = target.read_bytes()
    records = pq.read_table(target).to_pylist() if name.endswith(".parquet") else \
        [json.loads(line) for line in written.splitlines()]
    assert records == RECORDS


def test_a_failure_while_finishing_parquet_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"old")

    def full_disk(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "close", full_disk)
    with pytest.raises(OSError, match="No space left"), rio.RecordWriter(str(target)) as out:
        out.write(pa.Table.from_pylist(RECORDS))
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.parquet"]


def test_atomic_path_replaces_a_directory_only_on_success(tmp_path):
    target = tmp_path / "clif"
    target.mkdir()
    (target / "old.parquet").write_bytes(b"old")
    with pytest.raises(ValueError), rio.atomic_path(target) as tmp:
        os.makedirs(tmp)
        (tmp_path / os.path.basename(tmp) / "new.parquet").write_bytes(b"new")
        raise ValueError
    assert os.listdir(tmp_path) == ["clif"] and os.listdir(target) == ["old.parquet"]
    with rio.atomic_path(target) as tmp:
        os.makedirs(tmp)
        with open(os.path.join(tmp, "new.parquet"), "wb") as f:
            f.write(b"new")
    assert os.listdir(tmp_path) == ["clif"] and os.listdir(target) == ["new.parquet"]


def test_parquet_output_fills_missing_fields_and_rejects_late_ones(tmp_path):
    path = str(tmp_path / "out.parquet")
    with rio.RecordWriter(path) as out:
        out.write(pa.Table.from_pylist([{"a": 1, "b": "x"}]))
        out.write(pa.Table.from_pylist([{"a": 2}]))
    assert pq.read_table(path).to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    late = pytest.raises(DataError, match="field 'c' first appears after the first batch")
    with late, rio.RecordWriter(path) as out:
        out.write(pa.Table.from_pylist([{"a": 1}]))
        out.write(pa.Table.from_pylist([{"a": 2, "c": 3}]))
    assert pq.read_table(path).num_rows == 2 and os.listdir(tmp_path) == ["out.parquet"]


# ----------------------------------------------------------------------------- stdout

def test_stdout_is_jsonl_by_default_and_parquet_when_asked(monkeypatch):
    buffer = _stdout(monkeypatch)
    with rio.RecordWriter("-") as out:
        out.write(pa.Table.from_pylist(RECORDS))
    assert [json.loads(line) for line in buffer.getvalue().splitlines()] == RECORDS
    buffer = _stdout(monkeypatch)
    with rio.RecordWriter("-", "parquet") as out:
        out.write(pa.Table.from_pylist(RECORDS))
    assert buffer.getvalue()[:4] == b"PAR1"
    assert pq.read_table(io.BytesIO(buffer.getvalue())).to_pylist() == RECORDS


def test_a_failed_parquet_stream_gets_no_footer(monkeypatch):
    # A truncated Parquet stream must not read as a complete file.
    buffer = _stdout(monkeypatch)
    with pytest.raises(KeyboardInterrupt), rio.RecordWriter("-", "parquet") as out:
        out.write(pa.Table.from_pylist(RECORDS))
        raise KeyboardInterrupt
    del out
    import gc
    gc.collect()
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(buffer.getvalue()))


# ----------------------------------------------------------------------------- empty inputs

def test_an_empty_writer_gives_empty_jsonl_and_a_typed_empty_parquet(tmp_path):
    schema = pa.schema([("text", pa.large_string()), ("sentences", pa.large_list(pa.large_string()))])
    with rio.RecordWriter(str(tmp_path / "out.jsonl"), schema=schema):
        pass
    with rio.RecordWriter(str(tmp_path / "out.parquet"), schema=schema) as out:
        out.write(pa.Table.from_pylist([], schema=schema))
    assert (tmp_path / "out.jsonl").read_bytes() == b""
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 0 and table.schema == schema


def test_empty_inputs_read_as_nothing(tmp_path, monkeypatch):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"\n\n")
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "empty.parquet")
    names = [str(tmp_path / n) for n in ("empty.jsonl", "blank.jsonl", "empty.parquet")]
    assert list(rio.read_batches(names)) == []
    _stdin(monkeypatch, b"")
    assert list(rio.read_batches("-")) == []


@pytest.mark.parametrize("source", ["empty.jsonl", "empty.parquet", "-"])
def test_notes_clean_on_empty_input_writes_valid_empty_output(shell, tmp_path, source):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    pq.write_table(pa.table({"text": pa.array([], pa.string()), "id": pa.array([], pa.int64())}),
                   tmp_path / "empty.parquet")
    done = shell(f"ehrkit notes clean {source} -o out.parquet < /dev/null & a=$!\n"
                 f"ehrkit notes clean {source} < /dev/null > out.jsonl & b=$!\n"
                 "wait $a && wait $b")
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 0 and "text" in table.schema.names
    assert (tmp_path / "out.jsonl").read_bytes() == b""


def test_writing_to_dev_null_leaves_the_device_alone(ehrkit):
    done = ehrkit("synth", "notes", "-n", "3", "-o", "/dev/null")
    assert done.returncode == 0, done.stderr
    import stat

    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
