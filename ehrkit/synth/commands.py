"""Library entry points behind `ehrkit synth ...`: generate and write, with a summary."""

from __future__ import annotations

import pyarrow as pa

from ehrkit import log
from ehrkit.io import RecordWriter
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
