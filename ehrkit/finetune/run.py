"""`ehrkit finetune` as a library call: read labelled records, put a new head on a pretrained
model (or a new GRU), train it with the one training loop keeping the best model by a
validation metric, then predict the evaluation split and record everything in the run
directory:

    RUN/config.json, model.safetensors, tokenizer or vocab.json   the best model (transformers)
    RUN/finetune.json      task, input fields, label map (what `ehrkit predict` needs)
    RUN/metrics.jsonl      training loss and validation metrics, by step
    RUN/predictions.parquet  prediction records of the evaluation split (held_out rows; the
                           tuning rows when there are none)
    RUN/ehrkit.json, README.md   provenance and model card, with validation and test metrics

With several seeds each run is RUN/seed-N, and RUN/seeds.json holds every metric's mean and
standard deviation over the seeds (RECITAL and MT-Clinical BERT report them so).
"""

from __future__ import annotations

import json
import math
import resource
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from ehrkit import log, provenance, runtime
from ehrkit.errors import DataError, UsageError
from ehrkit.finetune import models
from ehrkit.finetune.inputs import Featurizer
from ehrkit.finetune.spec import TASKS, Spec
from ehrkit.finetune.task import Data, FinetuneTask, class_weights
from ehrkit.probe.data import HELD_OUT, TRAIN, TUNING, carve_tuning, group_ids, split_codes
from ehrkit.train import checkpoint
from ehrkit.train.checkpoint import promote_best
from ehrkit.train.loop import TrainConfig, train

HEADS = {"text": ("classifier.", "bert.pooler."), "ner": ("classifier.",),
         "timeline": ("score.",), "series": ("head.",)}


@dataclass
class FinetuneRequest:
    inputs: list
    run_dir: Path
    init: str | None = None  # a model directory; None: a new GRU on series
    fmt: str | None = None  # records format, or "conll" for CoNLL/BIO files
    task: str = "auto"
    label_fields: list = field(default_factory=list)
    positive: str | None = None
    text_field: str = "text"
    input_field: str = "input_ids"
    tokens_field: str = "tokens"
    tags_field: str = "tags"
    scheme: str = "bio"  # ner: bio or bilou
    max_length: int | None = None  # tokens; default min(512, the model's positions)
    stride: int = 32
    split_field: str = "split"
    group_field: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    class_weights: bool = False
    urt: bool = False
    freeze_encoder: bool = False
    select: str | None = None
    gru: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    seeds: list = field(default_factory=list)
    device: str = "auto"
    resume: bool = False

    def check(self) -> None:
        if self.task not in ("auto", *TASKS):
            raise UsageError(f"--task {self.task}: use auto or one of {', '.join(TASKS)}")
        if self.task != "ner" and not self.label_fields:
            raise UsageError("finetune needs --label-field NAME (or --task ner with tags)")
        if self.scheme not in ("bio", "bilou"):
            raise UsageError(f"--scheme {self.scheme}: use bio or bilou")
        if self.urt and models.model_type(self.init) != "llama":
            raise UsageError("--urt truncates timelines: it goes with a causal timeline model")
        if self.init is None and self.task == "ner":
            raise UsageError("--task ner needs --init DIR (a BERT model)")


def run_finetune(req: FinetuneRequest) -> dict:
    req.check()
    rt = runtime.setup(req.device, req.train.seed)
    try:
        seeds = list(req.seeds) or [req.train.seed]
        if len(seeds) == 1:
            summary = _run_one(replace(req, train=replace(req.train, seed=seeds[0])), rt)
        else:
            runs = []
            for seed in seeds:
                runtime.seed_everything(seed)
                runs.append(_run_one(replace(req, run_dir=req.run_dir / f"seed-{seed}",
                                             train=replace(req.train, seed=seed)), rt))
            summary = _over_seeds(req.run_dir, seeds, runs, rt)
        if rt.main:
            sys.stdout.write(json.dumps(summary, default=json_default) + "\n")
            sys.stdout.flush()
        return summary
    finally:
        runtime.teardown()


def _run_one(req: FinetuneRequest, rt) -> dict:
    checkpoint.check_run_dir(req.run_dir, req.resume)
    table, source = read_records(req.inputs, req.fmt)
    spec, labels_y, parsed = _spec(req, table, source)
    model, tokenizer, new = models.build(spec, req.init, req.train.seed, _gru_options(req, table),
                                         req.max_length)
    spec.max_length = _max_length(req, model)
    featurizer = Featurizer(spec, model, tokenizer)
    codes, how = _splits(req, table, source)
    if spec.task == "ner":
        from ehrkit.finetune.tagging import ner_data

        data, row_of = ner_data(spec, table, tokenizer, source, parsed=parsed)
    else:
        data, row_of = Data(featurizer.prepare(table, source), y=labels_y), np.arange(len(table))
    codes_per_row = codes[row_of]
    usable = data.prepared.lengths > 0
    train_rows = np.flatnonzero((codes_per_row == TRAIN) & usable & _labelled(data))
    val_rows = np.flatnonzero((codes_per_row == TUNING) & usable)
    if len(train_rows) == 0:
        raise DataError(f"{source}: no training rows with a label ({how})")
    weights = class_weights(spec.task, _train_targets(data, spec, train_rows), spec.outputs) \
        if req.class_weights else None
    if req.freeze_encoder:
        _freeze(model, spec.kind)
    task = FinetuneTask(spec, model, featurizer, data, train_rows, val_rows, seed=req.train.seed,
                        class_weights=weights, urt=req.urt, select=req.select,
                        save_extra=_saver(spec, req.init, tokenizer))
    if rt.main:
        req.run_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"finetune {spec.task} ({spec.kind}): {len(train_rows):,} training and "
                 f"{len(val_rows):,} validation {'windows' if spec.task == 'ner' else 'rows'} "
                 f"({how}); {len(new)} new weight tensors; on {rt.describe()['device']} x {rt.world}")
    runtime.barrier(rt)
    result = train(task, req.train, rt, req.run_dir, req.resume)
    summary = {"run_dir": str(req.run_dir), "task": spec.task, "kind": spec.kind,
               "seed": req.train.seed, "steps": result.step, "train_loss": result.train_loss,
               "selected_by": result.selected_by, "best_step": result.best_step,
               "best": result.best_val_loss, "seconds": round(result.seconds, 2),
               "stopped": result.stopped}
    if rt.main:
        promote_best(req.run_dir, task.save)
        summary["validation"] = _best_validation(req.run_dir, result.best_step)
        summary["test"] = _predict_evaluation_split(req, spec, table, data, row_of, codes, rt)
        _provenance(req, spec, rt, summary, how, codes, len(new))
    runtime.barrier(rt)
    return summary


# ------------------------------------------------------------------------------- inputs


def read_records(inputs: list, fmt: str | None) -> tuple[pa.Table, str]:
    """All records of the inputs (CoNLL files, JSONL or Parquet) and a name for messages."""
    from ehrkit.io import read_table

    source = inputs[0] if len(inputs) == 1 else "input"
    if fmt == "conll" or (fmt is None and all(is_conll(p) for p in inputs)):
        from ehrkit.finetune.tagging import read_conll_files

        return read_conll_files(inputs), source
    return read_table(inputs, fmt), source


def is_conll(path: str) -> bool:
    return Path(path).name.lower().removesuffix(".gz").endswith((".conll", ".bio", ".tsv", ".iob"))


def _spec(req: FinetuneRequest, table: pa.Table, source: str):
    kind = models.kind_for(req.init, req.task)
    return make_spec(kind, req.task, req.label_fields, req.positive, table, source,
                     text_field=req.text_field, input_field=req.input_field,
                     tokens_field=req.tokens_field, tags_field=req.tags_field, stride=req.stride,
                     scheme=req.scheme)


def make_spec(kind: str, task: str, label_fields: list, positive: str | None, table: pa.Table,
              source: str, **fields):
    """The Spec (task, label map); the targets [rows, outputs-or-1] of row tasks; for ner the
    records' words and tags, read once here (the tag set sizes the model)."""
    if kind == "ner":
        from ehrkit.finetune import ner
        from ehrkit.finetune.tagging import words_and_tags

        spec = Spec(kind=kind, task="ner", **fields)
        parsed = words_and_tags(spec, table, source)
        spec.tag_names = ner.label_list(parsed[1], spec.scheme)
        return spec, None, parsed
    from ehrkit.probe.labels import build

    labels = build(table, list(label_fields), task, positive, source)
    spec = Spec(kind=kind, task=labels.task, targets=[t.to_json() for t in labels.targets], **fields)
    y = np.stack([t.y for t in labels.targets], axis=1).astype(np.float32)
    if spec.task == "regression":
        known = y[~np.isnan(y)]
        spec.target_mean = float(known.mean()) if known.size else 0.0
        spec.target_scale = float(known.std()) if known.size > 1 and known.std() > 0 else 1.0
        y = (y - spec.target_mean) / spec.target_scale
    return spec, y, None


def _gru_options(req: FinetuneRequest, table: pa.Table) -> dict:
    if models.model_type(req.init) not in (None, "ehrkit-gru") or req.task == "ner":
        return {}
    from ehrkit.train.multilabel import series_inputs

    inputs, _ = series_inputs(table.slice(0, 1), req.inputs[0] if len(req.inputs) == 1 else "input")
    return {"input_size": inputs.shape[2], **req.gru}


def _max_length(req: FinetuneRequest, model) -> int:
    positions = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    if not positions:
        return 0
    return req.max_length or min(512, positions)


def _splits(req: FinetuneRequest, table: pa.Table, source: str) -> tuple[np.ndarray, str]:
    return split_rows(table, source, req.split_field, req.group_field, req.val_fraction,
                      req.test_fraction, req.train.seed)


def split_rows(table: pa.Table, source: str, split_field: str, group_field: str | None,
               val_fraction: float, test_fraction: float, seed: int) -> tuple[np.ndarray, str]:
    """A split code per row (train, tuning, held_out) and how they were made: from the split
    field, else drawn by group; a share of train validates when no row is for tuning."""
    codes, how = split_codes(table, split_field, group_field, val_fraction, test_fraction, seed,
                             source)
    if not (codes == TUNING).any() and val_fraction > 0:
        groups = group_ids(table, group_field, source)
        codes = carve_tuning(codes, groups, val_fraction, seed)
        how += f"; no tuning rows, so a share {val_fraction:g} of train validates"
    return codes, how


def _labelled(data: Data) -> np.ndarray:
    if data.y is None:
        return np.ones(len(data.prepared.lengths), dtype=bool)
    return ~np.isnan(data.y).all(axis=1)


def _train_targets(data: Data, spec: Spec, rows: np.ndarray) -> np.ndarray:
    if spec.task == "ner":
        starts, ends = data.prepared.offsets[rows], data.prepared.offsets[rows + 1]
        return np.concatenate([data.labels[s:e] for s, e in zip(starts, ends)]).astype(np.float64)
    return data.y[rows]


def _freeze(model, kind: str) -> None:
    """A head-only baseline: every weight but the head's stays as pretrained."""
    heads = HEADS[kind]
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(heads)


def _saver(spec: Spec, init: str | None, tokenizer):
    def save(directory: Path) -> None:
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        elif spec.kind == "timeline":
            (directory / "vocab.json").write_bytes((Path(init) / "vocab.json").read_bytes())
    return save


# ------------------------------------------------------------------------------- results


def _best_validation(run_dir: Path, step: int | None) -> dict:
    """The validation metrics of the kept model, from metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    if step is None or not path.exists():
        return {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("step") == step and "val_loss" in row:
            return {k.removeprefix("val_"): v for k, v in row.items() if k.startswith("val_")}
    return {}


def _predict_evaluation_split(req, spec: Spec, table: pa.Table, data: Data, row_of: np.ndarray,
                              codes: np.ndarray, rt) -> dict:
    """Predict the held_out rows (else the tuning rows) with the kept model; write
    RUN/predictions.parquet; return the metrics."""
    from ehrkit.finetune.predict import Predictor
    from ehrkit.io import RecordWriter

    which = HELD_OUT if (codes == HELD_OUT).any() else TUNING
    if which == TUNING:
        log.warn("no held_out rows: the predictions and test metrics are on the validation rows")
    rows = np.flatnonzero(codes == which)
    predictor = Predictor.load(req.run_dir, rt)
    part = table.take(pa.array(rows))
    out, metrics = predictor.predict_table(part, "evaluation split", made_by="ehrkit finetune")
    with RecordWriter(str(req.run_dir / "predictions.parquet"), "parquet") as writer:
        writer.empty_schema = out.schema
        writer.write(out)
    metrics = {"split": "held_out" if which == HELD_OUT else "tuning", "rows": len(rows), **metrics}
    shown = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    log.info(f"finetune: evaluation split ({metrics['split']}, {len(rows):,} rows): " +
             ", ".join(f"{k} {v}" for k, v in list(shown.items())[:6]))
    return metrics


def _provenance(req, spec: Spec, rt, summary: dict, how: str, codes: np.ndarray, new: int) -> None:
    hardware = {**rt.describe(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    settings = {k: v for k, v in asdict(req).items() if k not in ("inputs", "run_dir", "train", "seeds")}
    data = {"rows": len(codes), "train": int((codes == TRAIN).sum()),
            "tuning": int((codes == TUNING).sum()), "held_out": int((codes == HELD_OUT).sum()),
            "splits": how, "new_weight_tensors": new, "labels": spec.label_names or spec.tag_names}
    info = provenance.RunInfo(kind="finetune", objective=spec.task,
                              settings={**settings, **asdict(req.train)}, inputs=list(req.inputs),
                              data=data, hardware=hardware, result=summary,
                              card={"title": f"{spec.task} model ({spec.kind})",
                                    "objective": f"Fine-tuned for a {spec.task} task on "
                                                 f"{spec.kind} records from {req.init or 'scratch'}."})
    provenance.write(req.run_dir, info)


def _over_seeds(run_dir: Path, seeds: list, runs: list[dict], rt) -> dict:
    """Mean and standard deviation (n - 1) of every validation and test metric over seeds."""
    out = {"run_dir": str(run_dir), "seeds": seeds, "task": runs[0]["task"]}
    for part in ("validation", "test"):
        names = [k for k, v in runs[0].get(part, {}).items() if isinstance(v, (int, float))
                 and k not in ("rows",)]
        table = {}
        for name in names:
            values = np.array([r.get(part, {}).get(name, math.nan) for r in runs], dtype=float)
            table[name] = {"mean": float(np.nanmean(values)) if np.isfinite(values).any() else None,
                           "sd": float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else None,
                           "values": values.tolist()}
        out[part] = table
    if rt.main:
        from ehrkit.io import write_json_artifact

        write_json_artifact(run_dir / "seeds.json", {"format": "ehrkit.seeds", "version": 1,
                                                     **out, "runs": runs}, indent=1)
        for name, stats in out["test"].items():
            if stats["mean"] is not None:
                sd = f" ± {stats['sd']:.4f}" if stats["sd"] is not None else ""
                log.info(f"over {len(seeds)} seeds: test {name} {stats['mean']:.4f}{sd}")
    return out


def json_default(value):
    """numpy scalars in the JSON summary line."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)
