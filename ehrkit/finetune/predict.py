"""`ehrkit predict` as a library call, and the Predictor `ehrkit finetune` uses for its own
evaluation split: a fine-tuned model directory applied to records, written as prediction
records (ehrkit.finetune.records) that `ehrkit evaluate` reads.

Input streams in chunks of `chunk_rows` records; within a chunk rows are sorted by length and
batched by a budget of padded tokens (ehrkit.embed.batching), so a score depends on its row
alone, not on its batch. Under torchrun rank r predicts chunks i with i % world == r and
writes its own Parquet part (the output must be a directory), as `ehrkit embed` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ehrkit import log
from ehrkit.embed.batching import Budget
from ehrkit.errors import UsageError
from ehrkit.finetune import models, records
from ehrkit.finetune.inputs import Featurizer
from ehrkit.finetune.score import BUDGET, score_metrics, score_rows
from ehrkit.finetune.spec import Spec
from ehrkit.finetune.task import Data
from ehrkit.io import STDIO, read_batches
from ehrkit.probe.labels import reapply


class Predictor:
    def __init__(self, directory: Path, spec: Spec, model, featurizer: Featurizer, rt,
                 budget: Budget = BUDGET):
        self.directory, self.spec, self.model, self.featurizer = directory, spec, model, featurizer
        self.rt, self.budget = rt, budget

    @classmethod
    def load(cls, directory: str | Path, rt, budget: Budget = BUDGET,
             max_length: int | None = None) -> "Predictor":
        from ehrkit.embed.models import read_config

        directory = Path(directory)
        read_config(directory)  # a clear error when it is not a model directory
        spec = Spec.load(directory)
        if max_length is not None:
            if spec.kind not in ("text", "timeline", "ner"):
                raise UsageError("--max-length goes with token models")
            spec.max_length = max_length
        model = models.load(directory, spec).to(rt.device)
        tokenizer = models.load_tokenizer(directory) if spec.kind in ("text", "ner") else None
        return cls(directory, spec, model, Featurizer(spec, model, tokenizer), rt, budget)

    def predict_table(self, table: pa.Table, source: str,
                      made_by: str = "ehrkit predict") -> tuple[pa.Table, dict]:
        """Prediction records for a table's rows, and metrics when the rows carry labels."""
        if self.spec.task == "ner":
            return self._tags(table, source, made_by)
        prepared = self.featurizer.prepare(table, source)
        rows = np.arange(table.num_rows)
        raw = score_rows(self.model, self.featurizer, Data(prepared), rows, self.rt, self.budget)
        scores = models.to_scores(self.spec, raw)
        truths = reapply(table, self.spec.targets, source)
        metrics = score_metrics(self.spec, np.stack(truths, axis=1), scores) \
            if truths is not None and len(rows) else {}
        columns = records.output_columns(self.spec, truths, scores)
        self.counts = {"rows": len(rows), "tokens": int(prepared.lengths.sum()),
                       "truncated": prepared.truncated, "empty": int((prepared.lengths == 0).sum())}
        return records.prediction_table(table, self.spec, columns, made_by), metrics

    def describe(self) -> str:
        return f"{self.spec.task} {self.spec.kind} model"

    def empty_schema(self, schema: pa.Schema | None) -> pa.Schema:
        """The output schema of no records (an empty input)."""
        return records.empty_schema(schema, self.spec, "ehrkit predict")

    def _tags(self, table: pa.Table, source: str, made_by: str) -> tuple[pa.Table, dict]:
        from ehrkit.eval import metrics as m
        from ehrkit.finetune.tagging import ner_data, predicted_tags

        data, _ = ner_data(self.spec, table, self.featurizer.tokenizer, source, require_tags=False)
        rows = np.arange(len(data.prepared.lengths))
        raw = score_rows(self.model, self.featurizer, data, rows, self.rt, self.budget)
        predicted = predicted_tags(self.spec, data, rows, raw, every_record=True)
        gold = data.gold
        metrics = m.sequence(gold, predicted) if gold else {}
        self.counts = {"rows": table.num_rows, "tokens": int(data.prepared.lengths.sum()),
                       "truncated": data.prepared.truncated, "empty": 0}
        return records.prediction_table(table, self.spec, records.tag_columns(gold, predicted),
                                        made_by), metrics


def _load(req: "PredictRequest", rt, budget: Budget):
    """The predictor of a fine-tuned or a multitask model directory."""
    from ehrkit.multitask.model import is_multitask

    if is_multitask(req.model):
        from ehrkit.multitask.predict import MultitaskPredictor

        return MultitaskPredictor.load(req.model, rt, budget, req.tasks, req.max_length)
    if req.tasks:
        raise UsageError("--tasks picks heads of a multitask model; this is a single-task model")
    return Predictor.load(req.model, rt, budget, req.max_length)


def _batches(path: str, fmt: str | None):
    """Record batches of an input: CoNLL files (NER) are read whole, records stream."""
    from ehrkit.finetune.run import is_conll

    if fmt == "conll" or (fmt is None and path != STDIO and is_conll(path)):
        from ehrkit.finetune.tagging import read_conll_files

        return read_conll_files([path]).to_batches()
    return read_batches(path, fmt)


# ----------------------------------------------------------------------------- the command


@dataclass
class PredictRequest:
    inputs: list
    model: str
    output: str = STDIO
    fmt: str | None = None
    to: str | None = None
    batch_size: int | None = None
    batch_tokens: int | None = None
    max_length: int | None = None
    chunk_rows: int = 2048
    device: str = "auto"
    tasks: list | None = None  # a multitask model: the heads to apply (default: all)


def run_predict(req: PredictRequest) -> dict:
    from ehrkit import runtime
    from ehrkit.embed.run import check_output, chunks, output_writer

    if req.chunk_rows < 1:
        raise UsageError(f"--chunk-rows {req.chunk_rows}: use at least 1")
    rt = runtime.setup(req.device)
    try:
        parts = check_output(req, rt.world)
        budget = Budget.of(req.batch_tokens, req.batch_size) \
            if req.batch_tokens or req.batch_size else BUDGET
        predictor = _load(req, rt, budget)
        timer, index = log.Timer(), 0
        totals = {"rows": 0, "tokens": 0, "truncated": 0, "empty": 0}
        with output_writer(req, parts, rt) as writer, log.progress("predict", unit="records") as bar:
            writer.empty_schema = predictor.empty_schema(None)
            for path in req.inputs:
                source = "<stdin>" if path == STDIO else path
                for table in chunks(_batches(path, req.fmt), req.chunk_rows):
                    mine, index = index % rt.world == rt.rank, index + 1
                    if index == 1:
                        writer.empty_schema = predictor.empty_schema(table.schema)
                    if not mine:
                        continue
                    out, _ = predictor.predict_table(table, source)
                    writer.write(out)
                    for key in totals:
                        totals[key] += predictor.counts[key]
                    bar.update(table.num_rows)
        seconds = max(timer.seconds, 1e-9)
        summary = {**totals, "rows_per_s": round(totals["rows"] / seconds, 1),
                   "seconds": round(seconds, 3), "model": str(req.model), "world_size": rt.world}
        if rt.main:
            line = (f"predict: {totals['rows']:,} rows, {summary['rows_per_s']:,.1f} rows/s; "
                    f"{predictor.describe()}")
            if totals["truncated"]:
                line += f"; {totals['truncated']:,} truncated to fit the model's input length"
            if totals["empty"]:
                line += f"; {totals['empty']:,} with no input (null score)"
            log.info(line)
        return summary
    finally:
        runtime.teardown()
