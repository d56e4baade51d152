"""`notes chunk` as a library: split note texts into chunks that fit a model of limited length.

Two chunkers, one interface (`split`: texts in, parent row and text of every chunk out):

- `WordChunker`: ClinicalBERT's fine-tuning chunks (methods.md 1.4, `preprocess.py`). The text
  is split on whitespace as Python's `str.split()` does; `floor(n / 318)` chunks of 318 words,
  then the trailing `n mod 318` words only when they are more than 10 (`len(x) % 318 > 10`), so a
  note of 10 words or fewer gives no chunk. Words are joined by single spaces.
- `TokenChunker`: windows of at most `max_tokens` minus the tokenizer's special tokens ([CLS]
  and [SEP]) word pieces. Windows start and end on word boundaries (the tokenizer's
  pre-tokens), so each chunk is a substring of the note that tokenizes back to the same
  pieces; the next window starts `stride` tokens before the previous one's end, moved back to
  the start of that word (overlap: at least `stride` tokens, whole words). Only a word longer
  than a window is cut inside (counted; that window is shrunk if it re-tokenizes longer).

`run_chunk` streams record batches from `ehrkit.io`: memory is bounded by the batch size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa

from ehrkit import log
from ehrkit.errors import DataError, MissingFieldError, UsageError
from ehrkit.io import RecordWriter, Schema, read_batches
from ehrkit.notes.fields import SENTENCES, note_text

ENCODE_CHARS = 1 << 20  # characters per tokenizer call: bounds the encodings held at once
_TOKENIZER_HINT = ("--tokenizer takes a local model directory written by `ehrkit pretrain` "
                   "(tokenizer.json, or vocab.txt); nothing is downloaded")


@dataclass
class ChunkStats:
    notes: int = 0
    chunks: int = 0
    empty: int = 0  # null, empty or whitespace-only texts
    no_chunk: int = 0  # notes that gave no chunk (empty ones included)
    dropped: int = 0  # words mode: trailing remainders too short to keep
    cut_words: int = 0  # token mode: windows that had to cut inside a word

    def add(self, other: "ChunkStats") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Pieces:
    """The chunks of a list of texts: the parent row and the text of each, in order."""

    parents: list[int]
    texts: list[str]
    stats: ChunkStats


# ----------------------------------------------------------------------------- words


def word_chunks(text: str, words: int = 318, min_remainder: int = 11) -> tuple[list[str], bool]:
    """ClinicalBERT's chunks of one text, and whether a short remainder was dropped.

    >>> word_chunks("a b  c\\td e", words=2, min_remainder=2)
    (['a b', 'c d'], True)
    >>> word_chunks("a b c d e", words=2, min_remainder=1)
    (['a b', 'c d', 'e'], False)
    """
    x = text.split()
    full, rem = divmod(len(x), words)
    chunks = [" ".join(x[j * words:(j + 1) * words]) for j in range(full)]
    if rem and rem >= min_remainder:
        chunks.append(" ".join(x[-rem:]))
    return chunks, 0 < rem < min_remainder


@dataclass(frozen=True)
class WordChunker:
    words: int = 318
    min_remainder: int = 11  # ClinicalBERT keeps a remainder of more than 10 words

    def split(self, texts: Sequence[str | None]) -> Pieces:
        # Python's str.split and str.join per note: measured faster than polars' regex
        # extraction and Arrow's utf8_split_whitespace (2.5x on 366 MB of notes), and it is
        # the source's own definition of a word.
        parents: list[int] = []
        out: list[str] = []
        stats = ChunkStats(notes=len(texts))
        for row, text in enumerate(texts):
            if not text or text.isspace():
                stats.empty += 1
                stats.no_chunk += 1
                continue
            chunks, dropped = word_chunks(text, self.words, self.min_remainder)
            stats.dropped += dropped
            stats.no_chunk += not chunks
            parents.extend([row] * len(chunks))
            out.extend(chunks)
        stats.chunks = len(out)
        return Pieces(parents, out, stats)

    def describe(self) -> str:
        return f"{self.words} words; a trailing remainder kept from {self.min_remainder} words"


# ----------------------------------------------------------------------------- tokens


class TokenChunker:
    """Windows of at most `window` word pieces over a `tokenizers.Tokenizer`'s encoding."""

    def __init__(self, tokenizer, max_tokens: int, stride: int):
        self.tokenizer = tokenizer
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.max_tokens, self.stride = max_tokens, stride
        self.window = max_tokens - tokenizer.num_special_tokens_to_add(False)
        if self.window < 1:
            raise UsageError(f"--max-tokens {max_tokens}: leaves no room for text beside the "
                             "tokenizer's special tokens")
        if not 0 <= stride < self.window:
            raise UsageError(f"--stride {stride}: use 0 to {self.window - 1} (less than the "
                             f"{self.window} tokens of a window)")

    def split(self, texts: Sequence[str | None]) -> Pieces:
        pieces = Pieces([], [], ChunkStats(notes=len(texts)))
        rows = [i for i, text in enumerate(texts) if text and not text.isspace()]
        pieces.stats.empty = len(texts) - len(rows)
        for group in _groups(rows, texts, ENCODE_CHARS):
            batch = [texts[i] for i in group]
            for row, text, enc in zip(group, batch, self._encode(batch)):
                for start, end in self.windows(enc, text, pieces.stats):
                    pieces.parents.append(row)
                    pieces.texts.append(text[start:end])
        pieces.stats.chunks = len(pieces.texts)
        pieces.stats.no_chunk = len(texts) - len(set(pieces.parents))
        return pieces

    def _encode(self, texts: list[str]):
        return self.tokenizer.encode_batch(texts, add_special_tokens=False)

    def windows(self, enc, text: str, stats: ChunkStats) -> list[tuple[int, int]]:
        """Character spans of the windows over one encoding (module docstring)."""
        n, size = len(enc), self.window
        spans: list[tuple[int, int]] = []
        start = 0
        while n:
            end = n
            if start + size < n:
                first, stop = _word_span(enc, start + size)
                # cut before the word the window reaches into, unless no window can hold it
                end = first if first > start and stop - first <= size else start + size
            if start != _word_start(enc, start) or (end < n and end != _word_start(enc, end)):
                stats.cut_words += 1
                end = self._fit(enc, text, start, end)
            spans.append((enc.token_to_chars(start)[0], enc.token_to_chars(end - 1)[1]))
            if end >= n:
                break
            start = _next_start(enc, start, end, self.stride, size)
        return spans

    def _fit(self, enc, text: str, start: int, end: int) -> int:
        """A window cut inside a word may tokenize to more pieces on its own: shrink it."""
        while end - start > 1:
            piece = text[enc.token_to_chars(start)[0]:enc.token_to_chars(end - 1)[1]]
            if len(self.tokenizer.encode(piece, add_special_tokens=False)) <= self.window:
                break
            end -= 1
        return end

    def describe(self) -> str:
        return f"windows of {self.window} tokens (+ specials = {self.max_tokens}), " \
               f"stride {self.stride}"


def _word_span(enc, token: int) -> tuple[int, int]:
    word = enc.token_to_word(token)
    span = enc.word_to_tokens(word) if word is not None else None
    return span if span is not None else (token, token + 1)


def _word_start(enc, token: int) -> int:
    """The first token of the word that holds `token`: the last cut point at or before it."""
    return _word_span(enc, token)[0]


def _next_start(enc, start: int, end: int, stride: int, size: int) -> int:
    """Where the window after [start, end) begins: `stride` tokens before `end`, moved back to
    the start of that word (so the overlap is at least `stride` tokens of whole words), or
    forward to its end when the word began at or before `start`; inside a word only when the
    word is longer than a window."""
    at = max(end - stride, start + 1)
    first, stop = _word_span(enc, at)
    if stop - first > size:
        return at
    return first if first > start else stop


def _groups(rows: list[int], texts: Sequence[str | None], chars: int) -> Iterator[list[int]]:
    group: list[int] = []
    size = 0
    for row in rows:
        group.append(row)
        size += len(texts[row])  # type: ignore[arg-type]
        if size >= chars:
            yield group
            group, size = [], 0
    if group:
        yield group


def load_tokenizer(directory: str | Path):
    """A model directory's fast tokenizer, from local files only; and the model's number of
    positions when config.json gives it."""
    where = Path(directory)
    if not where.is_dir():
        raise DataError(f"{directory}: no such tokenizer directory", hint=_TOKENIZER_HINT)
    if (where / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(where / "tokenizer.json"))
        except Exception:  # noqa: BLE001 - the Rust error may quote the file
            raise DataError(f"{where / 'tokenizer.json'}: not a readable tokenizer file",
                            hint=_TOKENIZER_HINT) from None
    else:
        tokenizer = _transformers_tokenizer(where)
    return tokenizer, _positions(where)


def _transformers_tokenizer(where: Path):
    """A directory with vocab.txt but no tokenizer.json: transformers builds the fast one."""
    from transformers import AutoTokenizer

    try:
        loaded = AutoTokenizer.from_pretrained(where, local_files_only=True)
    except (OSError, ValueError) as err:
        raise DataError(f"{where}: cannot load a tokenizer ({type(err).__name__})",
                        hint=_TOKENIZER_HINT) from None
    if not loaded.is_fast:
        raise DataError(f"{where}: the tokenizer has no fast (Rust) version", hint=_TOKENIZER_HINT)
    return loaded.backend_tokenizer


def _positions(where: Path) -> int | None:
    try:
        config = json.loads((where / "config.json").read_text(encoding="utf-8"))
        return int(config["max_position_embeddings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def make_chunker(words: int | None = None, min_remainder: int | None = None,
                 tokenizer: str | None = None, max_tokens: int | None = None,
                 stride: int | None = None) -> WordChunker | TokenChunker:
    """The chunker the options ask for: words (the default) or tokens (with a tokenizer)."""
    if tokenizer is None:
        if max_tokens is not None or stride is not None:
            raise UsageError("--max-tokens and --stride go with --tokenizer",
                             hint="without --tokenizer, chunks are counted in words (--words)")
        return WordChunker(words or 318, 11 if min_remainder is None else min_remainder)
    if words is not None or min_remainder is not None:
        raise UsageError("--words and --min-remainder go with word chunks, not --tokenizer",
                         hint="give either --words or --tokenizer")
    loaded, positions = load_tokenizer(tokenizer)
    if max_tokens is None:
        max_tokens = min(512, positions or 512)
    elif positions is not None and max_tokens > positions:
        raise UsageError(f"--max-tokens {max_tokens}: the model in {tokenizer} has only "
                         f"{positions} positions")
    return TokenChunker(loaded, max_tokens, 64 if stride is None else stride)


# ----------------------------------------------------------------------------- records


@dataclass
class NoteSchema(Schema):
    """The text field is required, or a `sentences` list when the text field is the default."""

    text_field: str = "text"

    def check(self, source: str, names: Sequence[str]) -> None:
        super().check(source, names)
        if self.text_field not in names and not (self.text_field == "text" and SENTENCES in names):
            raise MissingFieldError(source, self.text_field, list(names), "--text-field")

    def apply(self, source: str, batch: pa.RecordBatch) -> pa.RecordBatch:
        names = batch.schema.names
        field = self.text_field if self.text_field in names else SENTENCES
        if field in names and not _is_texts(batch.schema.field(field).type):
            raise DataError(f"{source}: field '{field}' is {batch.schema.field(field).type}, "
                            "not text", hint="choose the note text with --text-field")
        return super().apply(source, batch)


def _is_texts(kind: pa.DataType) -> bool:
    """A string, a list of strings (sentences), or all null."""
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        kind = kind.value_type
    return pa.types.is_null(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind) \
        or pa.types.is_string_view(kind)


def note_schema(text_field: str = "text", id_field: str | None = None) -> NoteSchema:
    required = [id_field] if id_field else []
    return NoteSchema(required=required, options={id_field: "--id-field"} if id_field else {},
                      text_field=text_field)


def note_texts(batch: pa.RecordBatch | pa.Table, text_field: str) -> tuple[str, list[str | None]]:
    """The field the text comes from, and every row's text (see ehrkit.notes.fields)."""
    field, column = note_text(batch, text_field)
    return field, column.to_pylist()


def chunk_batch(batch: pa.RecordBatch | pa.Table, chunker: WordChunker | TokenChunker,
                text_field: str = "text") -> tuple[pa.Table, ChunkStats]:
    """One record per chunk: the parent's fields, the chunk's text in place of the note's
    (and of a `sentences` list), `chunk_index` and `chunk_count` (int32)."""
    source, texts = note_texts(batch, text_field)
    pieces = chunker.split(texts)
    parents = np.asarray(pieces.parents, dtype=np.int64)
    counts = np.bincount(parents, minlength=batch.num_rows)
    first = np.cumsum(counts) - counts
    table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    table = table.take(pa.array(parents))
    out_field = text_field if source == text_field else "text"
    table = _put(table, source, out_field, pa.array(pieces.texts, pa.large_string()))
    if SENTENCES in table.schema.names:
        table = table.drop_columns([SENTENCES])
    index = np.arange(parents.size, dtype=np.int32) - first[parents].astype(np.int32)
    table = _put(table, "chunk_index", "chunk_index", pa.array(index, pa.int32()))
    table = _put(table, "chunk_count", "chunk_count",
                 pa.array(counts[parents].astype(np.int32), pa.int32()))
    return table, pieces.stats


def _put(table: pa.Table, old: str, new: str, values: pa.Array) -> pa.Table:
    """Replace field `old` by `new` in place, or append `new`."""
    i = table.schema.get_field_index(old)
    if i < 0:
        return table.append_column(new, values)
    return table.set_column(i, new, values)


def output_schema(text_field: str) -> pa.Schema:
    """What an output with no input records is written with."""
    return pa.schema([pa.field(text_field, pa.large_string()),
                      pa.field("chunk_index", pa.int32()), pa.field("chunk_count", pa.int32())])


def run_chunk(paths: list[str], output: str, fmt_in: str | None, fmt_out: str | None,
              chunker: WordChunker | TokenChunker, text_field: str = "text",
              id_field: str | None = None) -> ChunkStats:
    """Read note records, write one record per chunk, summarise on stderr."""
    timer, stats = log.Timer(), ChunkStats()
    batches = read_batches(paths, fmt_in, note_schema(text_field, id_field))
    with RecordWriter(output, fmt_out, output_schema(text_field)) as out, \
            log.progress("notes chunk", unit="notes") as bar:
        for batch in batches:
            table, done = chunk_batch(batch, chunker, text_field)
            out.write(table)
            stats.add(done)
            bar.update(done.notes)
    _summarise(stats, chunker, max(timer.seconds, 1e-9))
    return stats


def _summarise(stats: ChunkStats, chunker: WordChunker | TokenChunker, seconds: float) -> None:
    parts = [f"notes chunk: {stats.notes} notes -> {stats.chunks} chunks",
             f"{stats.no_chunk} notes without a chunk ({stats.empty} empty or null)"]
    if isinstance(chunker, WordChunker):
        parts.append(f"{stats.dropped} short remainders dropped")
    elif stats.cut_words:
        parts.append(f"{stats.cut_words} windows cut inside a word longer than a window")
    log.info("; ".join(parts) + f"; {seconds:.1f} s ({stats.notes / seconds:.0f} notes/s)")
    log.detail(f"chunks: {chunker.describe()}")
