"""`ehrkit pretrain` as a library call: read records, build the objective's task, run the one
training loop, keep the best model in the run directory, record provenance."""

from __future__ import annotations

import importlib
import json
import resource
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ehrkit import log, provenance, runtime
from ehrkit.io import read_table
from ehrkit.train import checkpoint
from ehrkit.train.loop import TrainConfig, train

OBJECTIVES = {"mlm": "ehrkit.train.mlm", "clm": "ehrkit.train.clm",
              "multilabel": "ehrkit.train.multilabel"}
CARDS = {
    "mlm": "Masked language modelling (BERT, 15% of tokens, 80/10/10) on clinical notes.",
    "clm": "Next-token prediction (Llama-shaped, from scratch) on packed patient timelines.",
    "multilabel": "A GRU trained on many binary labels at once from hourly ICU series.",
}


@dataclass
class PretrainRequest:
    inputs: list
    fmt: str | None
    objective: str
    run_dir: Path
    train: TrainConfig
    options: dict = field(default_factory=dict)
    device: str = "auto"
    resume: bool = False


def run_pretrain(req: PretrainRequest) -> dict:
    rt = runtime.setup(req.device, req.train.seed)
    try:
        checkpoint.check_run_dir(req.run_dir, req.resume)
        table = read_table(req.inputs, req.fmt)
        source = req.inputs[0] if len(req.inputs) == 1 else "input"
        task = importlib.import_module(OBJECTIVES[req.objective]).build_task(
            table, dict(req.options), req.train.seed, source)
        if rt.main:
            req.run_dir.mkdir(parents=True, exist_ok=True)
            log.info(f"pretrain {req.objective}: {_describe(task)} on {rt.describe()['device']} "
                     f"x {rt.world}")
        runtime.barrier(rt)
        result = train(task, req.train, rt, req.run_dir, req.resume)
        summary = {"run_dir": str(req.run_dir), "objective": req.objective, "steps": result.step,
                   "val_loss": result.val_loss, "best_val_loss": result.best_val_loss,
                   "best_step": result.best_step, "train_loss": result.train_loss,
                   "tokens": result.tokens,
                   "tokens_per_s": round(result.tokens_per_s, 1), "mfu": result.mfu,
                   "seconds": round(result.seconds, 2), "stopped": result.stopped}
        if rt.main:
            _finalize(task, req, rt, summary)
            sys.stdout.write(json.dumps(summary) + "\n")
            sys.stdout.flush()
        return summary
    finally:
        runtime.teardown()


def _finalize(task, req: PretrainRequest, rt, summary: dict) -> None:
    """The best model (by validation loss) becomes the run directory's model."""
    checkpoint.promote_best(req.run_dir, task.save)
    hardware = {**rt.describe(), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    peak = runtime.cuda_peak_memory(rt)
    if peak is not None:
        hardware["peak_cuda_mb"] = peak / 2**20
    options = {k: v for k, v in req.options.items() if k != "exclude_ids"}
    info = provenance.RunInfo(
        kind="pretrain", objective=req.objective,
        settings={"objective": req.objective, **options, **asdict(req.train)},
        inputs=list(req.inputs), data=getattr(task, "summary", {}),
        exclusion=req.options.get("exclude_ids"), hardware=hardware, result=summary,
        card={"objective": CARDS[req.objective]})
    provenance.write(req.run_dir, info)


def _describe(task) -> str:
    summary = getattr(task, "summary", {})
    shown = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
    return ", ".join(f"{k} {v}" for k, v in shown.items())
