"""The one training loop, shared by pretrain, finetune and multitask: only the Task varies.

A Task owns the model and the data. It hands the loop *global* batches (all ranks, all
micro-batches of one optimizer step) as dicts of CPU tensors, deterministic given the seed and
epoch, so a resumed run sees exactly the batches it would have seen; the loop slices each rank's
part. `task.loss` returns a summed loss and the number of items it sums over; the loop divides
by the count over every rank and micro-batch, so one process with batch 2B and two with B
compute the same mean loss and gradients.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from ehrkit import log, runtime
from ehrkit.runtime import Runtime
from ehrkit.train import checkpoint


class Task(Protocol):
    model: torch.nn.Module

    def batches(self, epoch: int, global_batch: int) -> list[dict]:
        """The epoch's global batches, in order (shuffled by seed and epoch)."""

    def eval_batches(self, global_batch: int) -> list[dict]:
        """Validation batches; may be empty."""

    def loss(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, number of items summed) for one rank's micro-batch."""

    def tokens(self, batch: dict) -> int:
        """Useful (non-padding) tokens in a batch, for throughput."""

    def flops_per_token(self) -> float | None:
        """Training FLOPs per token (for MFU), if known."""

    def save(self, directory: Path) -> None:
        """Write the model directory (weights, config, vocabulary)."""

    # Optional: a task with `validate(model, rt) -> dict` and `select = (metric, higher is
    # better)` keeps its best model by that validation metric (fine-tuning: AUROC, F1, Pearson)
    # instead of by validation loss. Every rank computes the same metrics on the whole
    # validation set, so every rank takes the same decisions.


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 8  # per device and micro-batch
    grad_accum: int = 1
    max_steps: int | None = None
    epochs: float | None = None
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1  # a fraction of the steps (< 1) or a number of steps
    clip: float = 1.0
    eval_every: int = 100
    checkpoint_every: int | None = None  # default: eval_every
    patience: int | None = None  # evaluations without improvement before stopping
    max_minutes: float | None = None
    log_every: int = 10
    seed: int = 0


@dataclass
class Result:
    step: int = 0
    epoch: int = 0
    train_loss: float = float("nan")
    val_loss: float | None = None
    best_val_loss: float | None = None  # the best selection value (loss or the task's metric)
    best_step: int | None = None
    selected_by: str = "val_loss"
    val_metrics: dict = field(default_factory=dict)  # the last validation's task metrics
    tokens_per_s: float = 0.0
    tokens: int = 0  # useful (non-padding) tokens trained on, in this process's run
    mfu: float | None = None
    seconds: float = 0.0
    stopped: str = "max steps"
    history: list = field(default_factory=list)


def train(task: Task, config: TrainConfig, rt: Runtime, run_dir: Path, resume: bool = False) -> Result:
    model = task.model.to(rt.device)
    ddp = runtime.wrap_ddp(model, rt, getattr(task, "find_unused_parameters", False))
    global_batch = config.batch_size * config.grad_accum * rt.world
    batches = task.batches(0, global_batch)  # packing an epoch can be costly: once
    total = total_steps(config, max(1, len(batches)))
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_decay(config, total))
    state = {"step": 0, "epoch": 0, "index": 0, "best_val": None, "best_step": None,
             "bad_evals": 0, "elapsed": 0.0, "tokens": 0}
    if resume:
        state = checkpoint.load(run_dir / "checkpoint", model, optimizer, scheduler, rt.device)
        if rt.main:
            _forget_metrics_after(run_dir, state["step"])
        log.info(f"resumed at step {state['step']} of {total}")
    result, start, peak = Result(), time.perf_counter() - state["elapsed"], runtime.peak_flops(rt)
    window_tokens, window_start = 0, time.perf_counter()
    if state["epoch"]:
        batches = task.batches(state["epoch"], global_batch)
    eval_batches = task.eval_batches(global_batch)
    while state["step"] < total:
        if state["index"] >= len(batches):
            state["epoch"], state["index"] = state["epoch"] + 1, 0
            batches = task.batches(state["epoch"], global_batch)
        batch = batches[state["index"]]
        loss, tokens = _step(task, ddp, batch, config, rt, optimizer, scheduler)
        state["step"] += 1
        state["index"] += 1
        state["tokens"] += tokens
        window_tokens += tokens
        result.train_loss = loss
        _fault_injection(state["step"])
        if state["step"] % config.log_every == 0 or state["step"] == total:
            rate = window_tokens / max(time.perf_counter() - window_start, 1e-9)
            window_tokens, window_start = 0, time.perf_counter()
            result.tokens_per_s = rate
            flops = task.flops_per_token()
            result.mfu = rate * flops / (peak * rt.world) if peak and flops else None
            _record(run_dir, rt, result, {"step": state["step"], "epoch": state["epoch"],
                                          "loss": loss, "lr": scheduler.get_last_lr()[0],
                                          "tokens_per_s": rate, "mfu": result.mfu})
        # Out of time: rank 0's clock decides for every rank (clocks differ), and before
        # validating, so the last model of a time-capped run is validated too.
        late = bool(config.max_minutes) and time.perf_counter() - start > config.max_minutes * 60
        late = runtime.broadcast_flag(late, rt)
        stop = None
        if eval_batches and (state["step"] % config.eval_every == 0 or state["step"] == total
                             or late):
            # early stopping follows from metrics every rank computes alike
            stop = _evaluate(task, model, eval_batches, config, rt, run_dir, state, result)
        stop = stop or ("max minutes" if late else None)
        every = config.checkpoint_every or config.eval_every
        if state["step"] % every == 0 or stop or state["step"] == total:
            state["elapsed"] = time.perf_counter() - start
            if rt.main:
                checkpoint.save(run_dir / "checkpoint", model, optimizer, scheduler, state)
            runtime.barrier(rt)
        if stop:
            result.stopped = stop
            break
    result.step, result.epoch = state["step"], state["epoch"]
    result.best_val_loss, result.best_step = state["best_val"], state["best_step"]
    result.selected_by = _selection(task)[0]
    result.seconds = time.perf_counter() - start
    result.tokens = state["tokens"]
    result.tokens_per_s = state["tokens"] / max(result.seconds, 1e-9)
    return result


def _step(task, ddp, batch, config, rt, optimizer, scheduler) -> tuple[float, int]:
    """One optimizer step over the rank's share of a global batch, in micro-batches."""
    ddp.train()
    mine = shard(batch, rt.rank, rt.world)
    micro = split(mine, config.grad_accum)
    total_loss = torch.zeros((), device=rt.device)
    total_count = torch.zeros((), device=rt.device)
    tokens = 0
    for i, part in enumerate(micro):
        part = {k: v.to(rt.device) for k, v in part.items()}
        last = i == len(micro) - 1
        # Gradients are all-reduced once per step, on the last micro-batch.
        with nullcontext() if last or not rt.distributed else ddp.no_sync():
            with rt.autocast():
                summed, count = task.loss(ddp, part)
            # The mean needs the count over all micro-batches and ranks, known only at the
            # end: backpropagate the sum now and rescale the gradients below.
            summed.backward()
        total_loss += summed.detach().float()
        total_count += count.detach().float()
        tokens += task.tokens(part)
    global_count = runtime.all_reduce_sum(total_count.clone(), rt)
    # DDP averages gradients over ranks; multiply by world / global count to get the global mean.
    scale = rt.world / max(global_count.item(), 1.0)
    for p in ddp.parameters():
        if p.grad is not None:
            p.grad.mul_(scale)
    if config.clip:
        torch.nn.utils.clip_grad_norm_(ddp.parameters(), config.clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    global_loss = runtime.all_reduce_sum(total_loss.clone(), rt)
    return (global_loss / global_count.clamp(min=1)).item(), tokens


@torch.no_grad()
def _evaluate(task, model, eval_batches, config, rt, run_dir, state, result) -> str | None:
    model.eval()
    summed = torch.zeros((), device=rt.device)
    count = torch.zeros((), device=rt.device)
    for batch in eval_batches:
        mine = {k: v.to(rt.device) for k, v in shard(batch, rt.rank, rt.world).items()}
        with rt.autocast():
            loss, n = task.loss(model, mine)
        summed += loss.float()
        count += n.float()
    val = (runtime.all_reduce_sum(summed, rt) / runtime.all_reduce_sum(count, rt).clamp(min=1)).item()
    result.val_loss = val
    metrics = task.validate(model, rt) if hasattr(task, "validate") else {}
    result.val_metrics = metrics
    name, higher = _selection(task)
    _record(run_dir, rt, result, {"step": state["step"], "val_loss": val,
                                  **{f"val_{k}": float(v) for k, v in metrics.items()}},
            shown=("val_loss", f"val_{name}"))
    value = val if name == "val_loss" else float(metrics.get(name, math.nan))
    if _improves(value, state["best_val"], higher):
        state["best_val"], state["best_step"], state["bad_evals"] = value, state["step"], 0
        if rt.main:
            from ehrkit.io import atomic_path

            with atomic_path(run_dir / "best") as tmp:
                Path(tmp).mkdir()
                task.save(Path(tmp))
        runtime.barrier(rt)
        return None
    state["bad_evals"] += 1
    if config.patience is not None and state["bad_evals"] >= config.patience:
        return "early stopping"
    return None


def _selection(task) -> tuple[str, bool]:
    """(what chooses the best model, whether larger is better): the task's metric or val loss."""
    return getattr(task, "select", None) or ("val_loss", False)


def _improves(value: float, best: float | None, higher: bool) -> bool:
    """Whether a validation value beats the best so far; NaN (an undefined metric, e.g. AUROC
    on one class) never does, but is kept when nothing better has been seen."""
    if best is None:
        return True
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if higher else value < best


def shard(batch: dict, rank: int, world: int) -> dict:
    """A rank's rows of a global batch: every world-th row, starting at its rank."""
    if world == 1:
        return batch
    return {k: v[rank::world] for k, v in batch.items()}


def split(batch: dict, parts: int) -> list[dict]:
    """Micro-batches of a rank's batch; each tensor is cut by its own rows (a summed multitask
    step holds tasks with different batch sizes). Empty micro-batches are left out."""
    if parts == 1:
        return [batch]
    out = [{} for _ in range(parts)]
    for key, value in batch.items():
        size = math.ceil(value.shape[0] / parts)
        for i, part in enumerate(out):
            part[key] = value[i * size:(i + 1) * size]
    return [part for part in out if any(v.shape[0] for v in part.values())]


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    return max(1, math.ceil((config.epochs or 1.0) * steps_per_epoch))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay for biases and normalisation weights (1-d parameters)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def warmup_then_decay(config: TrainConfig, total: int):
    warmup = config.warmup if config.warmup >= 1 else config.warmup * total
    warmup = max(int(warmup), 0)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(total - warmup, 1))
    return factor


def _record(run_dir: Path, rt: Runtime, result: Result, row: dict, shown=None) -> None:
    """A line in metrics.jsonl and, for people, on stderr (rank 0 only; `shown` keys only)."""
    result.history.append(row)
    if not rt.main:
        return
    with open(run_dir / "metrics.jsonl", "a") as out:
        out.write(json.dumps(row) + "\n")
    parts = [f"step {row['step']}"] + [f"{k} {v:.4g}" for k, v in row.items()
                                      if k not in ("step", "epoch") and isinstance(v, float)
                                      and (shown is None or k in shown)]
    log.info("  ".join(parts))


def _forget_metrics_after(run_dir: Path, step: int) -> None:
    """Steps after the checkpoint are replayed on resume: drop their old metric lines."""
    path = run_dir / "metrics.jsonl"
    if path.exists():
        rows = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        path.write_text("".join(row + "\n" for row in rows))


def _fault_injection(step: int) -> None:
    """Tests kill the process after a step, as kill -9 would (EHRKIT_KILL_AT_STEP)."""
    at = os.environ.get("EHRKIT_KILL_AT_STEP")
    if at and int(at) == step:
        os.kill(os.getpid(), signal.SIGKILL)
