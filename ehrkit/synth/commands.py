"""Library entry points behind `ehrkit synth ...`: generate and write, with a summary."""

from __future__ import annotations

import contextlib
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from ehrkit import log
from ehrkit.io import STDIO, RecordWriter, atomic_path
from ehrkit.synth import clif, series, text_tasks
from ehrkit.synth import notes as synth_notes


class _RowBuffer:
    """Collects rows from a generator callback and writes them in batches."""

    def __init__(self, writer: RecordWriter, schema: pa.Schema, size: int = 4096):
        self.writer, self.schema, self.size, self.rows = writer, schema, size, []

    def __call__(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write(pa.RecordBatch.from_pylist(self.rows, schema=self.schema))
            self.rows = []


def write_notes(n: int, seed: int, output: str, fmt: str | None, admissions: str | None) -> None:
    timer = log.Timer()
    with RecordWriter(output, fmt, synth_notes.NOTE_SCHEMA) as out:
        if admissions:
            with RecordWriter(admissions, None, synth_notes.ADMISSION_SCHEMA) as adm_out:
                sink = _RowBuffer(adm_out, synth_notes.ADMISSION_SCHEMA)
                _write_all(out, synth_notes.note_batches(n, seed, sink), n)
                sink.flush()
        else:
            _write_all(out, synth_notes.note_batches(n, seed), n)
    log.info(f"synth notes: {out.rows} notes in {timer.seconds:.1f} s (seed {seed})")


def _write_all(writer: RecordWriter, batches, total: int) -> None:
    with log.progress("synth", total=total) as bar:
        for batch in batches:
            writer.write(batch)
            bar.update(batch.num_rows)


def write_clif(n: int, seed: int, directory: str) -> None:
    """Write a CLIF 2.1 directory; it appears only once every table is complete."""
    timer, rows, stays = log.Timer(), dict.fromkeys(clif.TABLES, 0), 0
    with atomic_path(directory) as tmp, contextlib.ExitStack() as files:
        os.makedirs(tmp)
        writers = {t: files.enter_context(pq.ParquetWriter(
            os.path.join(tmp, f"clif_{t}.parquet"), clif.SCHEMAS[t], compression="zstd"))
            for t in clif.TABLES}
        with log.progress("synth clif", total=n, unit="hospitalizations") as bar:
            for tables in clif.clif_batches(n, seed):
                for name, table in tables.items():
                    writers[name].write_table(table)
                    rows[name] += table.num_rows
                stays += tables["hospitalization"].num_rows
                bar.update(tables["hospitalization"].num_rows)
    log.info(f"synth clif: {stays} hospitalizations of {rows['patient']} patients, "
             f"{sum(rows.values())} rows in {len(rows)} tables in {timer.seconds:.1f} s "
             f"(seed {seed})")


def write_series(n: int, seed: int, output: str, fmt: str | None) -> None:
    timer = log.Timer()
    with RecordWriter(output, fmt, series.SCHEMA) as out:
        _write_all(out, series.series_batches(n, seed), n)
    log.info(f"synth series: {out.rows} stays x {series.HOURS} hours x {len(series.VARIABLES)} "
             f"variables in {timer.seconds:.1f} s (seed {seed})")


CONLL_SUFFIXES = (".conll", ".iob", ".iob2", ".bio", ".tsv", ".txt")


def ner_format(output: str, fmt: str | None) -> str | None:
    """'conll' when asked for or named by the extension; otherwise the record format (or None).

    >>> ner_format("train.conll", None), ner_format("x.jsonl", None), ner_format("-", "conll")
    ('conll', None, 'conll')
    """
    if fmt == "conll" or (fmt is None and output.lower().endswith(CONLL_SUFFIXES)):
        return "conll"
    return fmt


def write_ner(n: int, seed: int, output: str, fmt: str | None) -> None:
    timer, fmt = log.Timer(), ner_format(output, fmt)
    if fmt == "conll":
        if output == STDIO:
            rows = _write_conll(sys.stdout, text_tasks.ner_batches(n, seed), n)
            sys.stdout.flush()
        else:
            with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as stream:
                rows = _write_conll(stream, text_tasks.ner_batches(n, seed), n)
    else:
        with RecordWriter(output, fmt, text_tasks.NER_SCHEMA) as out:
            _write_all(out, text_tasks.ner_batches(n, seed), n)
        rows = out.rows
    log.info(f"synth ner: {rows} sentences ({fmt or 'records'}) in {timer.seconds:.1f} s "
             f"(seed {seed})")


def _write_conll(stream, batches, total: int) -> int:
    rows = 0
    with log.progress("synth", total=total) as bar:
        for batch in batches:
            stream.write("".join(text_tasks.conll_lines(batch)))
            rows += batch.num_rows
            bar.update(batch.num_rows)
    return rows


def write_pairs(n: int, seed: int, output: str, fmt: str | None) -> None:
    timer = log.Timer()
    with RecordWriter(output, fmt, text_tasks.PAIR_SCHEMA) as out:
        _write_all(out, text_tasks.pair_batches(n, seed), n)
    log.info(f"synth pairs: {out.rows} sentence pairs in {timer.seconds:.1f} s (seed {seed})")
