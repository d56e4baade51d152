"""Entry points behind `ehrkit notes ...`: read, process, write, summarise."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ehrkit import log
from ehrkit.io import RecordWriter, Schema, output_format, read_chunks
from ehrkit.notes.pipeline import NotesConfig, Stats, clean_chunks
from ehrkit.notes.threads import default_workers

if TYPE_CHECKING:
    import pyarrow as pa


def note_schema(config: NotesConfig) -> Schema:
    tf = config.text_field
    return Schema(text=[tf], required=[tf], options={tf: "--text-field"})


def output_schema(config: NotesConfig) -> pa.Schema:
    """What an empty output is written with."""
    import pyarrow as pa

    fields = [pa.field(config.text_field, pa.large_string())]
    if config.segment is not None and config.explode:
        fields.append(pa.field("sentence_index", pa.int32()))
    elif config.segment is not None:
        fields.append(pa.field(config.sentences_field, pa.large_list(pa.large_string())))
    return pa.schema(fields)


def run_clean(paths: list[str], output: str, fmt_in: str | None, fmt_out: str | None,
              config: NotesConfig, workers: int | None) -> Stats:
    timer, stats = log.Timer(), Stats()
    workers = workers or default_workers()
    chunks = read_chunks(paths, fmt_in, note_schema(config), frames=True)
    # An empty JSONL output is empty whatever its schema: Arrow is only needed for Parquet.
    schema = output_schema(config) if output_format(output, fmt_out) == "parquet" else None
    with RecordWriter(output, fmt_out, schema) as out, \
            log.progress("notes clean", unit="notes") as bar:
        encode = out.format == "jsonl"
        for done in clean_chunks(chunks, config, workers, encode):
            if encode:
                out.write_encoded(done.payload, done.stats.notes)
            else:
                out.write(done.payload)
            stats.add(done.stats)
            bar.update(done.stats.notes)
    seconds = max(timer.seconds, 1e-9)
    segmented = f", {stats.sentences} sentences" if config.segment is not None else ""
    log.info(f"notes clean: {stats.notes} notes ({stats.bytes_in / 1e6:.1f} MB){segmented} "
             f"in {seconds:.1f} s ({stats.notes / seconds:.0f} notes/s, "
             f"{stats.bytes_in / 1e6 / seconds:.1f} MB/s)")
    log.detail(f"profile {config.clean.profile.value}, segmenter {config.segmenter}, "
               f"workers {workers}")
    return stats
