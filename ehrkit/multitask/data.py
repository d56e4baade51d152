"""Each task's records as model rows, with the readers, label maps and splits of
`ehrkit finetune` (ehrkit.finetune.run, .tagging, .ner).

Inputs, by what a task reads:
- `words` (ner): words in windows of at most `max_length` sub-tokens, labels on each word's
  first sub-token (ehrkit.finetune.ner);
- `text` (a [CLS] task on one text): the text split into words as NER spans are
  (ehrkit.finetune.ner.WORD) and encoded the same way, keeping each record's first window. So a
  text gives the same sub-tokens to a token head and a [CLS] head, and `ehrkit predict` runs
  the encoder once for both;
- `pair`: `[CLS] a [SEP] b [SEP]` with segment ids 0/1, the longer side cut first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ehrkit.embed.batching import ranges
from ehrkit.embed.models import Prepared, note_texts
from ehrkit.errors import DataError, MissingFieldError, UsageError
from ehrkit.finetune import ner
from ehrkit.finetune.run import make_spec, read_records, split_rows
from ehrkit.finetune.spec import Spec
from ehrkit.finetune.task import Data
from ehrkit.multitask.config import LABEL_DEFAULTS, PAIRS, TaskConfig
from ehrkit.probe.data import HELD_OUT, TRAIN, TUNING

PAIR_LENGTH = 128  # MT-Clinical BERT's sentence-pair length


@dataclass
class TaskData:
    config: TaskConfig
    spec: Spec  # the head's task and label map (as `ehrkit finetune` saves them)
    input: str  # words, text or pair
    fields: tuple  # the fields read: (tokens,) / (text,) / (a, b)
    data: Data  # model rows and their targets
    row_of: np.ndarray  # each model row's record
    table: pa.Table  # the records
    source: str
    splits: str  # how the splits were made
    train_rows: np.ndarray
    val_rows: np.ndarray
    test_rows: np.ndarray  # held_out rows, else the validation rows
    test_split: str

    @property
    def name(self) -> str:
        return self.config.name


def load_task(config: TaskConfig, tokenizer, positions: int, seed: int) -> TaskData:
    """Read, label, split and encode one task's records."""
    table, source = read_records(list(config.data), config.format)
    if table.num_rows == 0:
        raise DataError(f"{source}: task {config.name} has no records")
    codes, how = split_rows(table, source, config.split_field, config.group_field,
                            config.val_fraction, config.test_fraction, seed)
    if config.type == "ner":
        spec, data, row_of, fields = _words_task(config, table, tokenizer, source, positions)
        kind = "words"
    else:
        fields = text_fields(config, table, source)
        kind = "pair" if len(fields) == 2 else "text"
        spec, y = _labels(config, table, source, fields[0])
        spec.max_length = min(config.max_length or (PAIR_LENGTH if kind == "pair" else 512),
                              positions)
        if kind == "pair":
            prepared, row_of = encode_pairs(tokenizer, table, fields, spec.max_length, source), \
                np.arange(table.num_rows)
        else:
            texts = note_texts(table, fields[0], source).fill_null("").to_pylist()
            words, _ = split_words(texts)
            prepared, row_of = first_windows(ner.encode(tokenizer, words, None, {}, spec.max_length,
                                                        config.stride))
        data = Data(prepared, y=y[row_of])
    where = codes[row_of]
    usable = data.prepared.lengths > 0
    labelled = np.ones(len(row_of), bool) if data.y is None else ~np.isnan(data.y).all(axis=1)
    train_rows = np.flatnonzero((where == TRAIN) & usable & labelled)
    val_rows = np.flatnonzero((where == TUNING) & usable)
    held = (where == HELD_OUT) & usable
    test_rows, test_split = (np.flatnonzero(held), "held_out") if held.any() else (val_rows, "tuning")
    if len(train_rows) == 0:
        raise DataError(f"{source}: task {config.name} has no training rows with a label ({how})")
    return TaskData(config, spec, kind, fields, data, row_of, table, source, how, train_rows,
                    val_rows, test_rows, test_split)


def _words_task(config: TaskConfig, table: pa.Table, tokenizer, source: str, positions: int):
    from ehrkit.finetune.tagging import ner_data

    text = config.text[0] if config.text else "text"
    spec, _, parsed = make_spec("ner", "ner", [], None, table, source, text_field=text,
                                tokens_field=config.tokens, tags_field=config.tags,
                                stride=config.stride, scheme=config.scheme)
    spec.max_length = min(config.max_length or 512, positions)
    data, row_of = ner_data(spec, table, tokenizer, source, parsed=parsed)
    return spec, data, row_of, (config.tokens,)


def text_fields(config: TaskConfig, table: pa.Table, source: str) -> tuple:
    """The text field, or a pair's two fields: as configured, else a known pair, else text."""
    names = table.column_names
    fields = config.text or next((pair for pair in PAIRS if set(pair) <= set(names)), ("text",))
    for name in fields:
        if name not in names:
            raise MissingFieldError(source, name, names, f"text= (task {config.name})")
    return tuple(fields)


def _labels(config: TaskConfig, table: pa.Table, source: str, text_field: str):
    names = table.column_names
    label = list(config.label) or [next(
        (n for n in LABEL_DEFAULTS.get(config.type, LABEL_DEFAULTS["*"]) if n in names), "label")]
    task = config.finetune_task
    spec, y, _ = make_spec("text", task, label, config.positive, table, source,
                           text_field=text_field)
    if config.type == "classification" and spec.task not in ("binary", "multiclass"):
        if spec.task == "multilabel":
            raise UsageError(f"task {config.name}: '{label[0]}' holds several labels per record",
                             hint="use type multilabel")
        spec, y, _ = make_spec("text", "multiclass", label, config.positive, table, source,
                               text_field=text_field)
    return spec, y


# ----------------------------------------------------------------------------- encoding


def split_words(texts: list[str]) -> tuple[list[list[str]], list[list[tuple[int, int]]]]:
    """Each text's words and their character offsets, split as NER spans are."""
    words, offsets = [], []
    for text in texts:
        found = list(ner.WORD.finditer(text or ""))
        words.append([m.group() for m in found])
        offsets.append([m.span() for m in found])
    return words, offsets


def first_windows(windows: ner.Windows) -> tuple[Prepared, np.ndarray]:
    """Each document's first window as model rows (what a [CLS] head reads), and the document
    of each row. Documents with no words have no row."""
    doc = windows.doc
    first = first_rows(doc)
    lengths = windows.lengths[first]
    flat = windows.input_ids[ranges(windows.offsets[first], lengths)]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    truncated = int((np.diff(np.r_[first, len(doc)]) > 1).sum())
    return Prepared(lengths.astype(np.int64), truncated, flat, offsets), doc[first]


def first_rows(doc: np.ndarray) -> np.ndarray:
    """The first window of each document (windows of a document are consecutive)."""
    return np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]]) if len(doc) else np.zeros(0, np.int64)


def encode_pairs(tokenizer, table: pa.Table, fields: tuple, max_length: int,
                 source: str) -> Prepared:
    """Sentence pairs as `[CLS] a [SEP] b [SEP]` with segment ids, the longer side cut first
    to fit `max_length`; a pair missing a side gets length 0."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.enable_truncation(max_length, strategy="longest_first")
    a, b = (note_texts(table, name, source) for name in fields)
    present = ~np.asarray(a.is_null().to_numpy(zero_copy_only=False), bool) & \
        ~np.asarray(b.is_null().to_numpy(zero_copy_only=False), bool)
    encodings = backend.encode_batch(list(zip(a.fill_null("").to_pylist(),
                                              b.fill_null("").to_pylist())))
    sizes = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
    total = int(sizes.sum())
    flat = np.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), np.int64, total)
    types = np.fromiter(itertools.chain.from_iterable(e.type_ids for e in encodings), np.int64,
                        total)
    truncated = sum(1 for e, keep in zip(encodings, present) if keep and e.overflowing)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return Prepared(np.where(present, sizes, 0), truncated, flat, offsets, types=types)
