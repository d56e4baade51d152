"""NER records to fine-tuning data and back (the word-level work is ehrkit.finetune.ner).

Records are either CoNLL/BIO files (`read_conll_files`: the split comes from a file named like
train, dev/devel/val/valid or test) or JSONL/Parquet with a `tokens` list and a `tags` list, or
with `text` and character `spans` [{start, end, label}]. Tags are converted to the run's scheme
(BIO or BILOU); the model's labels are `O` then each entity type's prefixes. A record becomes
one or more windows (`Data.prepared` rows); `row_of` maps each window to its record.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from ehrkit import log
from ehrkit.embed.models import Prepared
from ehrkit.errors import DataError, MissingFieldError
from ehrkit.finetune import ner
from ehrkit.finetune.spec import Spec
from ehrkit.finetune.task import Data

_SPLIT_NAMES = [("train", re.compile(r"train")), ("tuning", re.compile(r"dev|val|tun")),
                ("held_out", re.compile(r"test|held"))]


def read_conll_files(paths: list[str]) -> pa.Table:
    """Every sentence of every file; `split` from each file's name when it tells one."""
    tables = []
    for path in paths:
        table = ner.read_conll(path)
        stem = Path(path).name.lower()
        split = next((name for name, pattern in _SPLIT_NAMES if pattern.search(stem)), None)
        ids = pa.array([f"{Path(path).stem}:{i}" for i in table["id"].to_pylist()], pa.string())
        table = table.set_column(0, "id", ids)
        tables.append(table.append_column("split", pa.array([split] * table.num_rows, pa.string())))
    return pa.concat_tables(tables)


def words_and_tags(spec: Spec, table: pa.Table, source: str,
                   require_tags: bool = True) -> tuple[list[list[str]], list[list[str]] | None]:
    """Each record's words and (when present) tags in the spec's scheme."""
    names = table.column_names
    if spec.tokens_field in names:
        words = [list(w or []) for w in table[spec.tokens_field].to_pylist()]
        tags = [list(t or []) for t in table[spec.tags_field].to_pylist()] \
            if spec.tags_field in names else None
    elif spec.text_field in names and "spans" in names:
        words, tags, dropped = [], [], 0
        for row, (text, spans) in enumerate(zip(table[spec.text_field].to_pylist(),
                                                table["spans"].to_pylist())):
            try:
                aligned = ner.spans_to_words(text or "", spans or [])
            except DataError as err:
                raise DataError(f"{source}: row {row + 1}: {err.message}") from None
            words.append(aligned.words)
            tags.append(aligned.tags)
            dropped += aligned.dropped
        if dropped:
            log.warn(f"{source}: {dropped} overlapping or empty spans left out")
    else:
        raise MissingFieldError(source, spec.tokens_field, names, "--tokens-field")
    if tags is None:
        if require_tags:
            raise MissingFieldError(source, spec.tags_field, names, "--tags-field")
        return words, None
    for row, (w, t) in enumerate(zip(words, tags)):
        if len(w) != len(t):
            raise DataError(f"{source}: row {row + 1}: {len(w)} tokens but {len(t)} tags",
                            hint=f"'{spec.tokens_field}' and '{spec.tags_field}' need one tag per token")
    return words, [ner.to_scheme(t, spec.scheme) for t in tags]


def ner_data(spec: Spec, table: pa.Table, tokenizer, source: str, require_tags: bool = True,
             parsed: tuple | None = None) -> tuple[Data, np.ndarray]:
    """(windows as Data, the record of each window). Training labels only with
    `require_tags`; at prediction the gold tags are kept as strings (`data.gold`). `parsed`:
    the records' (words, tags) when the caller has read them already."""
    words, tags = parsed or words_and_tags(spec, table, source, require_tags)
    label2id = {name: i for i, name in enumerate(spec.tag_names)}
    windows = ner.encode(tokenizer, words, tags if require_tags else None, label2id,
                         spec.max_length, spec.stride)
    prepared = Prepared(windows.lengths.astype(np.int64), windows.truncated_words,
                        windows.input_ids, windows.offsets)
    data = Data(prepared, labels=windows.labels, windows=windows)
    data.gold, data.n_words = tags, [len(w) for w in words]
    return data, windows.doc


def _subset(windows: ner.Windows, rows: np.ndarray) -> ner.Windows:
    sizes = windows.lengths[rows]
    take = np.concatenate([np.arange(windows.offsets[r], windows.offsets[r + 1]) for r in rows]) \
        if len(rows) else np.zeros(0, np.int64)
    return ner.Windows(windows.input_ids[take], None if windows.labels is None else windows.labels[take],
                       windows.word_ids[take], np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                       windows.doc[rows])


def predicted_tags(spec: Spec, data: Data, rows: np.ndarray, raw: list,
                   every_record: bool = False) -> list[list[str]]:
    """Predicted tags of the records that have windows among `rows`, in record order; with
    `every_record`, of every record (one with no words gets no tags)."""
    docs = np.unique(data.windows.doc[rows])
    local = {int(d): i for i, d in enumerate(docs)}
    sub = _subset(data.windows, rows)
    sub.doc = np.array([local[int(d)] for d in sub.doc], dtype=np.int64)
    merged = ner.merge(sub, raw, [data.n_words[int(d)] for d in docs])
    tags = dict(zip(docs.tolist(), ner.to_tags(merged, spec.tag_names, spec.scheme)))
    every = range(len(data.n_words)) if every_record else docs.tolist()
    return [tags.get(d, []) for d in every]


def gold_and_predicted(spec: Spec, data: Data, rows: np.ndarray, raw: list):
    """Gold and predicted tags of the records whose windows are `rows` (validation)."""
    docs = np.unique(data.windows.doc[rows]).tolist()
    predicted = predicted_tags(spec, data, rows, raw)
    return [data.gold[d] for d in docs], predicted
