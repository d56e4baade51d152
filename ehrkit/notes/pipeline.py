"""`notes clean` as a library: clean and segment streams of note record batches.

Work is split by chunk (a record batch, a polars frame, or a block of JSONL lines that the
worker parses) across worker threads. At most two chunks per worker are in flight, so memory
stays bounded by the block size however large the input, and results are yielded in input
order. JSONL chunks become polars frames without going through Arrow: pyarrow (and the pandas
that pl.from_arrow imports) is only loaded for Parquet.
"""

from __future__ import annotations

import io
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator, Union

import polars as pl

from ehrkit.io import JsonlBlock, one_batch

from ehrkit.notes.choices import Profile
from ehrkit.notes.clean import CleanConfig, clean_column
from ehrkit.notes.segment import SegmentConfig, segment

if TYPE_CHECKING:
    import pyarrow as pa

Chunk = Union["pa.RecordBatch", pl.DataFrame, JsonlBlock]


@dataclass(frozen=True)
class NotesConfig:
    clean: CleanConfig = field(default_factory=CleanConfig)
    segment: SegmentConfig | None = field(default_factory=SegmentConfig)  # None: --no-segment
    segmenter: str = "fast"  # or "spacy", the reference
    explode: bool = False
    text_field: str = "text"
    sentences_field: str = "sentences"


@dataclass
class Stats:
    notes: int = 0
    bytes_in: int = 0
    sentences: int = 0

    def add(self, other: "Stats") -> None:
        self.notes += other.notes
        self.bytes_in += other.bytes_in
        self.sentences += other.sentences


def process_batch(batch: pa.RecordBatch, config: NotesConfig) -> pa.RecordBatch:
    """Clean one batch; other fields pass through unchanged."""
    return _to_batch(process_frame(_frame(batch), config))


def process_frame(frame: pl.DataFrame, config: NotesConfig) -> pl.DataFrame:
    tf = config.text_field
    frame = clean_column(frame, tf, config.clean)
    if config.segment is not None:
        if config.segmenter == "spacy":
            sentences = _spacy_sentences(frame[tf], config.segment)
        else:
            sentences = segment(frame[tf], config.segment,
                                cleaned=config.clean.profile is Profile.default)
        frame = frame.with_columns(sentences.alias(config.sentences_field))
        if config.explode:
            frame = _explode(frame, config)
    return frame


def _frame(batch: pa.RecordBatch) -> pl.DataFrame:
    frame = pl.from_arrow(batch, rechunk=False)
    return frame if isinstance(frame, pl.DataFrame) else frame.to_frame()


def _spacy_sentences(texts: pl.Series, seg: SegmentConfig) -> pl.Series:
    from ehrkit.notes import spacy_ref
    from ehrkit.notes.segment import fuse_lists

    raw = spacy_ref.split(texts.to_list(), clinical=seg.clinical)
    return pl.Series(fuse_lists(raw, seg), dtype=pl.List(pl.String))


def _explode(frame: pl.DataFrame, config: NotesConfig) -> pl.DataFrame:
    """One record per sentence: the sentence replaces the text, with its index in the note."""
    sf, tf = config.sentences_field, config.text_field
    frame = frame.with_columns(
        pl.int_ranges(0, pl.col(sf).list.len(), dtype=pl.Int32).alias("sentence_index"))
    frame = frame.explode([sf, "sentence_index"]).filter(pl.col(sf).is_not_null())
    return frame.with_columns(pl.col(sf).alias(tf)).drop(sf)


def _to_batch(frame: pl.DataFrame) -> pa.RecordBatch:
    return one_batch(frame.to_arrow())


@dataclass
class Done:
    """A processed chunk: a record batch, or JSONL bytes when the worker encoded it."""

    payload: pa.RecordBatch | bytes | memoryview
    stats: Stats


def work(chunk: Chunk, config: NotesConfig, encode: bool) -> Done:
    """Parse (if needed), clean, and optionally encode one chunk; runs in a worker."""
    frame = _chunk_frame(chunk)
    if frame is None or frame.height == 0:
        return Done(b"" if encode else _to_batch(pl.DataFrame()), Stats())
    stats = Stats(notes=frame.height, bytes_in=int(frame[config.text_field].str.len_bytes().sum()))
    frame = process_frame(frame, config)
    if config.segment is not None:
        stats.sentences = frame.height if config.explode else \
            int(frame[config.sentences_field].list.len().sum())
    if encode:
        buffer = io.BytesIO()
        frame.write_ndjson(buffer)
        return Done(buffer.getbuffer(), stats)  # a view: getvalue() would copy every output byte
    return Done(_to_batch(frame), stats)


def _chunk_frame(chunk: Chunk) -> pl.DataFrame | None:
    if isinstance(chunk, JsonlBlock):
        return chunk.frame()
    return chunk if isinstance(chunk, pl.DataFrame) else _frame(chunk)


def clean_chunks(chunks: Iterable[Chunk], config: NotesConfig,
                 workers: int, encode: bool) -> Iterator[Done]:
    """Process chunks with `workers` threads, yielding results in input order."""
    source = iter(chunks)
    first = next(source, None)
    if first is None:
        return
    second = next(source, None)
    chained = _chain(first, second, source)
    if second is None or workers <= 1:  # one chunk: a process pool costs more than it saves
        for chunk in chained:
            yield work(chunk, config, encode)
        return
    yield from _parallel(chained, config, workers, encode)


def _parallel(chunks: Iterator, config: NotesConfig, workers: int, encode: bool) -> Iterator[Done]:
    from concurrent.futures import ThreadPoolExecutor

    # Threads, not processes: the work is polars and pyarrow code that releases the GIL, so
    # threads scale across cores without pickling batches between processes.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ehrkit-notes") as pool:
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(pool.submit(work, chunk, config, encode))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # on an error or Ctrl-C, do not wait for queued work
                future.cancel()


def _chain(first, second, rest) -> Iterator:
    yield first
    if second is not None:
        yield second
    yield from rest
