"""`ehrkit predict` on a multitask model: the encoder runs once per input and every head that
fits the input reads the same states (MT-Clinical BERT's point: K tasks for one encoder pass).

Which heads fit a chunk of records:
- single-text heads (NER and [CLS] heads trained on one text) read the words of the tokens field
  when the records have it, else the text field split into words as in training; long texts
  run in windows (NER merges them, [CLS] heads read the first);
- sentence-pair heads read their two fields; heads on the same pair of fields share a pass.

Output: every input field but the model inputs, then per task NAME_score (and NAME_label when
the records carry the task's label), or for NER NAME_prediction (a tag per word, beside the
tokens; NAME_label the gold tags) or, from text, NAME_spans ({start, end, label} character
offsets). `ehrkit evaluate --label-field NAME_label --score-field NAME_score` reads one task.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from ehrkit.embed.batching import Budget
from ehrkit.embed.models import INPUT_FIELDS, Prepared, load_tokenizer, note_texts
from ehrkit.errors import UsageError
from ehrkit.finetune import models as ft_models
from ehrkit.finetune import ner, records
from ehrkit.finetune.score import BUDGET, score_metrics
from ehrkit.finetune.task import Data
from ehrkit.multitask import model as mt
from ehrkit.multitask.data import encode_pairs, first_rows, first_windows, split_words
from ehrkit.multitask.infer import run_heads
from ehrkit.probe.labels import reapply

METADATA_KEY = "ehrkit.multitask"


class MultitaskPredictor:
    def __init__(self, directory: Path, model: mt.MultitaskModel, tokenizer, rt,
                 budget: Budget = BUDGET, tasks: list[str] | None = None):
        self.directory, self.model, self.tokenizer, self.rt, self.budget = \
            directory, model, tokenizer, rt, budget
        known = list(model.tasks)
        for name in tasks or []:
            if name not in known:
                raise UsageError(f"--tasks {name}: the model has no such task",
                                 hint=f"its tasks: {', '.join(known)}")
        self.names = list(tasks) if tasks else known
        self.explicit = bool(tasks)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.counts: dict = {}

    @classmethod
    def load(cls, directory: str | Path, rt, budget: Budget = BUDGET,
             tasks: list[str] | None = None, max_length: int | None = None) -> "MultitaskPredictor":
        directory = Path(directory)
        model = mt.load(directory).to(rt.device)
        if max_length is not None:
            for head in model.tasks.values():
                head.spec.max_length = max_length
        return cls(directory, model, load_tokenizer(directory), rt, budget, tasks)

    @property
    def heads(self) -> list[mt.Head]:
        return [self.model.tasks[n] for n in self.names]

    def describe(self) -> str:
        n = len(self.names)
        return f"multitask model, {n} head{'s' * (n != 1)} ({', '.join(self.names)})"

    # ------------------------------------------------------------------ which heads fit

    def fitting(self, names: list[str]) -> tuple[list[mt.Head], dict]:
        """The heads that fit records with these fields, and the field each single-text head
        reads: NER the tokens field when present, else its text field; [CLS] heads their own
        text field. Heads reading the same field share an encoder pass."""
        fit, reads = [], {}
        for h in self.heads:
            if h.input == "pair":
                ok = set(h.fields) <= set(names)
            else:
                candidates = [h.spec.tokens_field, h.spec.text_field] if h.input == "words" \
                    else [h.fields[0]]
                field = next((f for f in candidates if f in names), None)
                ok = field is not None
                if ok:
                    reads[h.name] = field
            if ok:
                fit.append(h)
        missing = [h for h in self.heads if h not in fit]
        if missing and (self.explicit or not fit):
            wants = ", ".join(f"{h.name} ({' + '.join(h.fields)})" for h in missing)
            raise UsageError(f"the records lack the fields of task(s) {wants}",
                             hint=f"their fields: {', '.join(names)}")
        return fit, reads

    # ------------------------------------------------------------------ prediction

    def predict_table(self, table: pa.Table, source: str,
                      made_by: str = "ehrkit predict") -> tuple[pa.Table, dict]:
        heads, reads = self.fitting(table.column_names)
        columns: dict = {}
        metrics: dict = {}
        self.counts = {"rows": table.num_rows, "tokens": 0, "truncated": 0, "empty": 0}
        by_field: dict = {}
        for h in heads:
            if h.input != "pair":
                by_field.setdefault(reads[h.name], []).append(h)
        for field, group in by_field.items():
            self._single(table, source, group, field, columns, metrics)
        groups: dict = {}
        for h in heads:
            if h.input == "pair":
                groups.setdefault((tuple(h.fields), h.spec.max_length), []).append(h)
        for (fields, length), group in groups.items():
            prepared = encode_pairs(self.tokenizer, table, fields, length, source)
            self._count(prepared)
            self.counts["empty"] = max(self.counts["empty"], int((prepared.lengths == 0).sum()))
            rows = np.arange(table.num_rows)
            raw = run_heads(self.model, prepared, rows, [h.name for h in group], self.rt,
                            self.pad_id, self.budget)
            for h in group:
                self._scores(h, table, source, raw[h.name], columns, metrics)
        return self._table(table, heads, columns, made_by), metrics

    def _single(self, table, source, heads, field, columns, metrics) -> None:
        from ehrkit.finetune.tagging import predicted_tags, words_and_tags

        from_tokens = any(h.input == "words" and h.spec.tokens_field == field for h in heads)
        if from_tokens:
            words, offsets = [list(w or []) for w in table[field].to_pylist()], None
        else:
            words, offsets = split_words(note_texts(table, field, source).fill_null("").to_pylist())
        self.counts["empty"] = max(self.counts["empty"], sum(1 for w in words if not w))
        length = min(h.spec.max_length for h in heads)
        stride = next((h.spec.stride for h in heads if h.input == "words"), 0)
        windows = ner.encode(self.tokenizer, words, None, {}, length, min(stride, length - 3))
        if any(h.input == "words" for h in heads):
            prepared = Prepared(windows.lengths.astype(np.int64), windows.truncated_words,
                                windows.input_ids, windows.offsets)
            first = first_rows(windows.doc)
            doc = windows.doc[first]
        else:  # [CLS] heads only: the first window of each record is all they read
            prepared, doc = first_windows(windows)
            first = np.arange(len(doc))
        self._count(prepared)
        rows = np.arange(len(prepared.lengths))
        raw = run_heads(self.model, prepared, rows, [h.name for h in heads], self.rt,
                        self.pad_id, self.budget)
        for h in heads:
            if h.input == "words":
                data = Data(prepared, windows=windows)
                data.n_words = [len(w) for w in words]
                tags = predicted_tags(h.spec, data, rows, raw[h.name], every_record=True)
                if offsets is None:
                    gold = words_and_tags(h.spec, table, source, require_tags=False)[1]
                    part = records.tag_columns(gold, tags)
                    if gold:
                        metrics[h.name] = _sequence(gold, tags)
                else:
                    part = {"spans": _spans(tags, offsets)}
                columns.update({f"{h.name}_{k}": v for k, v in part.items()})
            else:
                per_record = np.full((table.num_rows, h.spec.outputs), np.nan, np.float32)
                per_record[doc] = raw[h.name][first]
                self._scores(h, table, source, per_record, columns, metrics)

    def _scores(self, h: mt.Head, table, source, raw: np.ndarray, columns, metrics) -> None:
        scores = ft_models.to_scores(h.spec, raw)
        truths = reapply(table, h.spec.targets, source)
        if truths is not None and table.num_rows:
            metrics[h.name] = score_metrics(h.spec, np.stack(truths, axis=1), scores)
        part = records.output_columns(h.spec, truths, scores)
        columns.update({f"{h.name}_{k}": v for k, v in part.items()})

    def _count(self, prepared: Prepared) -> None:
        self.counts["tokens"] += int(prepared.lengths.sum())
        self.counts["truncated"] += int(prepared.truncated)

    def _table(self, table: pa.Table, heads, columns: dict, made_by: str) -> pa.Table:
        drop = self._dropped(heads)
        keep = [n for n in table.column_names if n not in drop]
        out = pa.Table.from_arrays([table[n] for n in keep] + list(columns.values()),
                                   names=keep + list(columns))
        return out.replace_schema_metadata(self._metadata(heads, made_by))

    def _dropped(self, heads) -> set[str]:
        drop = set(INPUT_FIELDS) - {"tokens"}
        for h in heads:
            drop |= set(h.fields) | {h.spec.text_field}
            if h.input == "words":
                drop |= {h.spec.tags_field, "spans"}
                drop.discard(h.spec.tokens_field)
        return drop

    def _metadata(self, heads, made_by: str) -> dict:
        tasks = {}
        for h in heads:
            meta = {"task": "sequence" if h.spec.task == "ner" else h.spec.task,
                    "labels": h.spec.label_names or [h.spec.tags_field], "input": h.input}
            if h.spec.task == "binary":
                meta["positive"] = h.spec.targets[0]["positive"]
            if h.spec.task == "multiclass":
                meta["classes"] = h.spec.targets[0]["classes"]
            tasks[h.name] = meta
        return {METADATA_KEY: json.dumps({"made_by": made_by, "tasks": tasks}, default=str)}

    def empty_schema(self, schema: pa.Schema | None) -> pa.Schema:
        """The output schema of no records (an empty input)."""
        names = schema.names if schema is not None else []
        try:
            heads = self.fitting(names)[0] if schema is not None else self.heads
        except UsageError:
            heads = self.heads
        drop = self._dropped(heads)
        kept = [f for f in (schema or []) if f.name not in drop]
        added = []
        for h in heads:
            if h.spec.task == "ner":
                added.append(pa.field(f"{h.name}_prediction", pa.list_(pa.string())))
            elif h.spec.task in ("multiclass", "multilabel"):
                added.append(pa.field(f"{h.name}_score", pa.list_(pa.float64())))
            else:
                added.append(pa.field(f"{h.name}_score", pa.float64()))
        return pa.schema(kept + added, metadata=self._metadata(heads, "ehrkit predict"))


def _sequence(gold, predicted) -> dict:
    from ehrkit.eval import metrics as m

    return m.sequence(gold, predicted)


def _spans(tags: list[list[str]], offsets: list[list[tuple[int, int]]]) -> pa.Array:
    """Predicted entities as character spans of the text."""
    out = []
    for record_tags, record_offsets in zip(tags, offsets):
        out.append([{"start": record_offsets[a][0], "end": record_offsets[b - 1][1], "label": kind}
                    for kind, a, b in ner.entities(record_tags)])
    kind = pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string())]))
    return pa.array(out, kind)
