"""The multitask Task for the one training loop (ehrkit.train.loop): schedules, losses and
per-task validation.

Schedules (an epoch ends when the largest task, in batches, has been seen once):
- `round-robin` (MT-Clinical BERT): one batch of each task in turn, in the order given, each
  batch its own optimizer step; a task that runs out restarts (reshuffled), so small tasks are
  seen more often. An epoch is tasks x the largest task's batches steps.
- `proportional`: each step's task drawn with probability proportional to its number of
  batches; an epoch is the sum of every task's batches.
- `sum` (the paper's ablation): every step takes one batch of every task and the sum of the
  tasks' mean losses (each times its weight).
Each task's rows are reshuffled every epoch and restart (the source did not shuffle: a quirk
not kept). Batches of a task all have its batch size (the last partial one is dropped).

The loop's loss contract is (summed loss, items): one task's step returns its sum and count; a
summed step returns the sum of per-task means and a count of 1 per micro-batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ehrkit.embed.batching import pad_rows
from ehrkit.finetune.task import LOWER_IS_BETTER, SELECT, mix_seed, task_loss
from ehrkit.multitask.data import TaskData
from ehrkit.multitask.infer import inputs, run_heads

SCHEDULES = ("round-robin", "proportional", "sum")
MEAN = "tasks_mean"  # the default selection: the mean of each task's own metric


class MultitaskTask:
    # Each round-robin step uses one head: DDP must not wait for the other heads' gradients.
    find_unused_parameters = True

    def __init__(self, model, tasks: list[TaskData], schedule: str, *, seed: int,
                 base_batch: int, pad_id: int, select: str | None = None, save_extra=None):
        self.model, self.tasks, self.schedule, self.seed = model, tasks, schedule, seed
        self.base_batch, self.pad_id, self._save_extra = base_batch, pad_id, save_extra
        name = select or MEAN
        self.select = (name, name.rsplit(".", 1)[-1] not in LOWER_IS_BETTER)
        self.validation: dict = {}

    # ---------------------------------------------------------------- the schedule

    def plan(self, epoch: int, scale: int) -> list[list[tuple[int, np.ndarray]]]:
        """Each step's (task index, rows) pairs: one pair per step, or every task (sum)."""
        streams = [_Stream(self, k, epoch, t.config.batch_size * scale)
                   for k, t in enumerate(self.tasks)]
        counts = np.array([s.per_pass for s in streams])
        if self.schedule == "round-robin":
            return [[(k, streams[k].next())] for _ in range(counts.max())
                    for k in range(len(streams))]
        if self.schedule == "sum":
            return [[(k, s.next()) for k, s in enumerate(streams)] for _ in range(counts.max())]
        rng = np.random.default_rng([self.seed, epoch, 7])
        order = rng.choice(len(streams), size=int(counts.sum()), p=counts / counts.sum())
        return [[(int(k), streams[k].next())] for k in order]

    def steps_per_task(self, steps: int, scale: int) -> list[int]:
        """How many batches of each task the first `steps` optimizer steps trained on."""
        seen, epoch = np.zeros(len(self.tasks), np.int64), 0
        while steps > 0:
            plan = self.plan(epoch, scale)[:steps]
            for step in plan:
                for k, _ in step:
                    seen[k] += 1
            steps, epoch = steps - len(plan), epoch + 1
        return seen.tolist()

    # ---------------------------------------------------------------- Task protocol

    def batches(self, epoch: int, global_batch: int) -> "Batches":
        return Batches(self, self.plan(epoch, max(1, global_batch // self.base_batch)))

    def eval_batches(self, global_batch: int) -> "Batches":
        scale = max(1, global_batch // self.base_batch)
        steps = []
        for k, t in enumerate(self.tasks):
            size = t.config.batch_size * scale
            steps += [[(k, t.val_rows[i:i + size])] for i in range(0, len(t.val_rows), size)]
        return Batches(self, steps)

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(batch)
        device = next(iter(batch.values())).device
        if not out:  # a rank's empty share of a short validation batch
            zero = torch.zeros((), device=device)
            return zero, zero
        by_name = {t.name: t for t in self.tasks}
        parts = {name: task_loss(by_name[name].spec.task, logits.float(),
                                 batch[f"{name}:targets"], None) for name, logits in out.items()}
        if len(parts) == 1:
            return next(iter(parts.values()))
        total = sum(by_name[n].config.weight * s / c.clamp(min=1) for n, (s, c) in parts.items())
        return total, torch.ones((), device=device)

    def tokens(self, batch: dict) -> int:
        return int(sum(v.sum() for k, v in batch.items() if k.endswith(":attention_mask")))

    def flops_per_token(self) -> float | None:
        return None

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(Path(directory))
        if self._save_extra is not None:
            self._save_extra(Path(directory))

    def validate(self, model, rt) -> dict:
        """Each task's metrics on its validation rows ("NAME.metric"), and their mean of each
        task's own metric (entity F1, AUROC, macro-F1, macro-AUROC or Pearson)."""
        metrics, main = {}, []
        for t in self.tasks:
            if len(t.val_rows) == 0:
                continue
            found = task_metrics(model, t, t.val_rows, rt, self.pad_id)
            metrics.update({f"{t.name}.{k}": v for k, v in found.items()})
            value = found.get(SELECT[t.spec.task][0])
            if value is not None and np.isfinite(value):
                main.append(float(value))
        if main:
            metrics[MEAN] = float(np.mean(main))
        self.validation = metrics
        return metrics

    def collate(self, step: list[tuple[int, np.ndarray]]) -> dict:
        batch = {}
        for k, rows in step:
            t = self.tasks[k]
            prepared = t.data.prepared
            batch.update({f"{t.name}:{key}": value
                          for key, value in inputs(prepared, rows, self.pad_id).items()})
            if t.spec.task == "ner":
                labels, _ = pad_rows(t.data.labels, prepared.offsets, rows, -100)
                batch[f"{t.name}:targets"] = torch.from_numpy(labels)
            else:
                batch[f"{t.name}:targets"] = torch.from_numpy(t.data.y[rows])
        return batch


def task_metrics(model, t: TaskData, rows: np.ndarray, rt, pad_id: int) -> dict:
    """One task's metrics on some of its rows (ehrkit.finetune.score.row_metrics)."""
    from ehrkit.finetune.score import row_metrics

    raw = run_heads(model, t.data.prepared, rows, [t.name], rt, pad_id)[t.name]
    return row_metrics(t.spec, t.data, rows, raw)


class _Stream:
    """A task's training batches across passes: reshuffled at each restart."""

    def __init__(self, owner: MultitaskTask, k: int, epoch: int, size: int):
        self.owner, self.k, self.epoch, self.restarts = owner, k, epoch, 0
        self.size = min(size, len(owner.tasks[k].train_rows))
        self.groups = self._shuffle()
        self.per_pass, self.at = len(self.groups), 0

    def _shuffle(self) -> list[np.ndarray]:
        rows = self.owner.tasks[self.k].train_rows
        generator = torch.Generator().manual_seed(
            mix_seed(self.owner.seed, self.epoch, self.k, self.restarts))
        rows = rows[torch.randperm(len(rows), generator=generator).numpy()]
        return [rows[i:i + self.size] for i in range(0, len(rows) - self.size + 1, self.size)]

    def next(self) -> np.ndarray:
        if self.at == len(self.groups):
            self.restarts += 1
            self.groups, self.at = self._shuffle(), 0
        self.at += 1
        return self.groups[self.at - 1]


class Batches(Sequence):
    """An epoch's steps, collated when taken."""

    def __init__(self, task: MultitaskTask, steps: list):
        self.task, self.steps = task, steps

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, index: int) -> dict:
        return self.task.collate(self.steps[index])
