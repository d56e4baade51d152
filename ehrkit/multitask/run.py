"""`ehrkit multitask` as a library call: one BERT encoder, a head per task, trained with the one
training loop on a schedule of the tasks' batches (ehrkit.multitask.task), validated per task
after every epoch, the best model by the mean of the tasks' own metrics kept; then each task's
evaluation split is predicted. The run directory:

    RUN/config.json, model.safetensors, tokenizer    the shared encoder (a BERT directory)
    RUN/heads.safetensors, multitask.json            the heads and their label maps
    RUN/metrics.jsonl                                loss and per-task validation metrics
    RUN/predictions/NAME.parquet                     each task's held_out (else tuning) split
    RUN/ehrkit.json, README.md                       provenance and model card

With `compare_single` every task is also trained alone (RUN/single/NAME) with the same
settings and as many optimizer steps on its own batches as it had in the multitask run, and
RUN/compare.json holds the per-task table multitask vs single-task (MT-Clinical BERT's
Table 2).
"""

from __future__ import annotations

import json
import math
import resource
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ehrkit import log, provenance, runtime
from ehrkit.errors import UsageError
from ehrkit.finetune.run import json_default
from ehrkit.finetune.task import SELECT
from ehrkit.multitask.config import TaskConfig, check_names, with_defaults
from ehrkit.multitask.task import MEAN, SCHEDULES, MultitaskTask, task_metrics
from ehrkit.train import checkpoint
from ehrkit.train.checkpoint import promote_best
from ehrkit.train.loop import TrainConfig, train


@dataclass
class MultitaskRequest:
    tasks: list
    init: str
    run_dir: Path
    schedule: str = "round-robin"
    frozen_heads: bool = False  # MT-Clinical BERT's quirk: heads stay at their random start
    select: str | None = None
    max_length: int | None = None  # single-text tasks; default min(512, the model's positions)
    compare_single: bool = False
    eval_every: int | None = None  # default: once per epoch
    train: TrainConfig = field(default_factory=TrainConfig)
    device: str = "auto"
    resume: bool = False

    def check(self) -> None:
        if self.schedule not in SCHEDULES:
            raise UsageError(f"--schedule {self.schedule}: use one of {', '.join(SCHEDULES)}")
        check_names(self.tasks)
        lengths = {t.max_length for t in self.tasks if t.head == "token" or len(t.text) < 2}
        if len(lengths - {None}) > 1:
            raise UsageError("single-text tasks share one encoder pass, so one max_length",
                             hint="set --max-length for all of them, or max_length on pairs only")


def run_multitask(req: MultitaskRequest) -> dict:
    req.check()
    rt = runtime.setup(req.device, req.train.seed)
    try:
        summary = _run_one(req, req.run_dir, rt)
        if req.compare_single:
            summary["compare"] = _compare_single(req, summary, rt)
        if rt.main:
            sys.stdout.write(json.dumps(summary, default=json_default) + "\n")
            sys.stdout.flush()
        return summary
    finally:
        runtime.teardown()


def _run_one(req: MultitaskRequest, run_dir: Path, rt) -> dict:
    from ehrkit.embed.models import load_tokenizer, read_config
    from ehrkit.multitask import model as mt
    from ehrkit.multitask.data import load_task

    checkpoint.check_run_dir(run_dir, req.resume)
    init = Path(req.init)
    positions = int(read_config(init).get("max_position_embeddings", 512))
    tokenizer = load_tokenizer(init)
    configs = [_defaults(t, req) for t in req.tasks]
    tasks = [load_task(c, tokenizer, positions, req.train.seed) for c in configs]
    heads = [mt.Head(t.name, t.config.head, t.input, list(t.fields), t.spec) for t in tasks]
    model = mt.build(init, heads, req.train.seed)
    if req.frozen_heads:
        for parameter in model.heads.parameters():
            parameter.requires_grad = False
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    task = MultitaskTask(model, tasks, req.schedule, seed=req.train.seed,
                         base_batch=req.train.batch_size, pad_id=pad_id, select=req.select,
                         save_extra=tokenizer.save_pretrained)
    scale = req.train.grad_accum * rt.world
    per_epoch = len(task.plan(0, scale))
    config = replace(req.train, eval_every=req.eval_every or per_epoch)
    if rt.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for t in tasks:
            log.info(f"task {t.name}: {t.spec.task} ({t.input}), {len(t.train_rows):,} training "
                     f"and {len(t.val_rows):,} validation rows, batch {t.config.batch_size} "
                     f"({t.splits})")
        log.info(f"multitask: {len(tasks)} heads, {req.schedule}, {per_epoch} steps per epoch"
                 f"{', heads frozen' if req.frozen_heads else ''}; on {rt.describe()['device']} "
                 f"x {rt.world}")
    runtime.barrier(rt)
    result = train(task, config, rt, run_dir, req.resume)
    summary = {"run_dir": str(run_dir), "tasks": [t.name for t in tasks],
               "schedule": req.schedule, "seed": req.train.seed, "steps": result.step,
               "steps_per_task": dict(zip([t.name for t in tasks],
                                          task.steps_per_task(result.step, scale))),
               "train_loss": result.train_loss, "selected_by": result.selected_by,
               "best_step": result.best_step, "best": result.best_val_loss,
               "seconds": round(result.seconds, 2), "stopped": result.stopped}
    if rt.main:
        promote_best(run_dir, task.save)
        summary["validation"] = _best_validation(run_dir, result.best_step, tasks)
        summary["test"] = _evaluation_splits(run_dir, tasks, rt, pad_id)
        _provenance(req, run_dir, tasks, rt, summary)
    runtime.barrier(rt)
    return summary


def _defaults(task: TaskConfig, req: MultitaskRequest) -> TaskConfig:
    task = with_defaults(task, req.train.batch_size)
    single = task.head == "token" or len(task.text) < 2
    if single and task.max_length is None and req.max_length is not None:
        task = replace(task, max_length=req.max_length)
    return task


# ------------------------------------------------------------------------------- results


def _best_validation(run_dir: Path, step: int | None, tasks) -> dict:
    """Each task's validation metrics of the kept model, from metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    out: dict = {t.name: {} for t in tasks}
    if step is None or not path.exists():
        return out
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("step") == step and "val_loss" in row:
            for key, value in row.items():
                name, _, metric = key.removeprefix("val_").partition(".")
                if metric and name in out:
                    out[name][metric] = value
            if f"val_{MEAN}" in row:
                out[MEAN] = row[f"val_{MEAN}"]
    return out


def _evaluation_splits(run_dir: Path, tasks, rt, pad_id: int) -> dict:
    """With the kept model: each task's evaluation split metrics, and its prediction records
    in RUN/predictions/NAME.parquet (the records `ehrkit evaluate` reads)."""
    import pyarrow as pa

    from ehrkit.finetune import models as ft_models
    from ehrkit.finetune import records
    from ehrkit.finetune.tagging import predicted_tags
    from ehrkit.io import RecordWriter
    from ehrkit.multitask import model as mt
    from ehrkit.multitask.infer import run_heads
    from ehrkit.probe.labels import reapply

    model = mt.load(run_dir).to(rt.device)
    (run_dir / "predictions").mkdir(exist_ok=True)
    out = {}
    for t in tasks:
        rows = t.test_rows
        metrics = task_metrics(model, t, rows, rt, pad_id) if len(rows) else {}
        out[t.name] = {"split": t.test_split, "rows": len(rows), **metrics}
        raw = run_heads(model, t.data.prepared, rows, [t.name], rt, pad_id)[t.name]
        if t.spec.task == "ner":
            docs = np.unique(t.row_of[rows])
            part = t.table.take(pa.array(docs))
            tags = predicted_tags(t.spec, t.data, rows, raw)
            columns = records.tag_columns([t.data.gold[d] for d in docs], tags)
        else:
            part = t.table.take(pa.array(t.row_of[rows]))
            truths = reapply(part, t.spec.targets, t.source)
            columns = records.output_columns(t.spec, truths, ft_models.to_scores(t.spec, raw))
        table = records.prediction_table(part, t.spec, columns, "ehrkit multitask")
        with RecordWriter(str(run_dir / "predictions" / f"{t.name}.parquet"), "parquet") as writer:
            writer.empty_schema = table.schema
            writer.write(table)
        main = SELECT[t.spec.task][0]
        if main in metrics:
            log.info(f"task {t.name}: {t.test_split} {main} {metrics[main]:.4f} ({len(rows):,} rows)")
    return out


def _provenance(req: MultitaskRequest, run_dir: Path, tasks, rt, summary: dict) -> None:
    hardware = {**rt.describe(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    settings = {"init": req.init, "schedule": req.schedule, "frozen_heads": req.frozen_heads,
                "select": req.select, "tasks": [asdict(t.config) for t in tasks],
                **asdict(req.train)}
    data = {t.name: {"rows": t.table.num_rows, "train": len(t.train_rows),
                     "tuning": len(t.val_rows), "test": len(t.test_rows), "splits": t.splits,
                     "labels": t.spec.label_names or t.spec.tag_names} for t in tasks}
    inputs = [p for t in tasks for p in t.config.data]
    names = ", ".join(f"{t.name} ({t.spec.task})" for t in tasks)
    info = provenance.RunInfo(kind="multitask", objective=req.schedule, settings=settings,
                              inputs=inputs, data=data, hardware=hardware, result=summary,
                              card={"title": f"multitask model: {names}",
                                    "objective": f"One BERT encoder from {req.init} with a head "
                                                 f"per task ({names}), trained {req.schedule}."})
    provenance.write(run_dir, info)


# ------------------------------------------------------------------------------- comparison


def _compare_single(req: MultitaskRequest, multi: dict, rt) -> dict:
    """Each task trained alone with the same settings and the same number of optimizer steps
    on its own batches as in the multitask run; the per-task table with deltas."""
    rows = []
    for task in req.tasks:
        steps = max(1, int(multi["steps_per_task"][task.name]))
        alone = replace(req, tasks=[task], compare_single=False,
                        train=replace(req.train, max_steps=steps, epochs=None))
        if rt.main:
            log.info(f"single-task {task.name}: {steps} steps")
        single = _run_one(alone, req.run_dir / "single" / task.name, rt)
        rows += _rows(task.name, multi, single)
    table = {"format": "ehrkit.compare", "version": 1, "split": "test", "rows": rows}
    if rt.main:
        from ehrkit.io import write_json_artifact

        write_json_artifact(req.run_dir / "compare.json", table, indent=1)
        log.info(format_table(rows))
    return table


def _rows(name: str, multi: dict, single: dict) -> list[dict]:
    a, b = multi.get("test", {}).get(name, {}), single.get("test", {}).get(name, {})
    metrics = [k for k, v in a.items() if isinstance(v, (int, float)) and k != "rows"
               and isinstance(b.get(k), (int, float))]
    # the task's own metric (the first of the selection metrics its task type reports) first
    main = next((m for m in metrics if m in {s for s, _ in SELECT.values()}), None)
    shown = ([main] if main else []) + [m for m in metrics if m != main][:3]
    out = []
    for metric in shown:
        x, y = float(a[metric]), float(b[metric])
        out.append({"task": name, "metric": metric, "multitask": x, "single": y,
                    "delta": x - y if math.isfinite(x) and math.isfinite(y) else None,
                    "split": a.get("split"), "n": a.get("rows")})
    return out


def format_table(rows: list[dict]) -> str:
    lines = ["multitask vs single-task (evaluation split)",
             f"{'task':<14}{'metric':<18}{'multitask':>10}{'single':>10}{'delta':>9}"]
    for r in rows:
        delta = f"{r['delta']:+.3f}" if r["delta"] is not None else "n/a"
        lines.append(f"{r['task']:<14}{r['metric']:<18}{r['multitask']:>10.3f}"
                     f"{r['single']:>10.3f}{delta:>9}")
    return "\n".join(lines)
