"""The fine-tuning Task for the one training loop (ehrkit.train.loop): batches, loss, the
validation metric that picks the best checkpoint, and scoring rows with a model.

Rows are encoded once (`Prepared`); a batch is a set of row indices, padded when taken. Losses
(sums, with the number of items they sum over, as the loop wants):
- binary: sigmoid + binary cross entropy on one logit (ClinicalBERT), `pos_weight` with class
  weights;
- multiclass: softmax cross entropy, per-class weights with class weights;
- multilabel: binary cross entropy per known label (a missing label is left out);
- regression: squared error on standardised targets;
- ner: cross entropy on each word's first sub-token (RECITAL); other positions are -100.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ehrkit.embed.batching import pad_rows
from ehrkit.finetune import models
from ehrkit.finetune.spec import Spec

# Which validation metric keeps the best model, per task, and whether larger is better.
SELECT = {"binary": ("auroc", True), "multiclass": ("macro_f1", True),
          "multilabel": ("auroc_macro", True), "regression": ("pearson", True),
          "ner": ("entity_f1", True)}
LOWER_IS_BETTER = {"mse", "mae", "rmse", "brier", "ece", "log_loss", "val_loss"}


class Data:
    """Encoded rows and their targets. `y`: [rows, outputs-or-1] float32 (NaN: unknown) for
    row tasks; for ner, `labels` is flat int64 aligned with the token ids (-100: not scored)."""

    def __init__(self, prepared, y: np.ndarray | None = None, labels: np.ndarray | None = None,
                 windows=None):
        self.prepared, self.y, self.labels, self.windows = prepared, y, labels, windows
        self.gold: list | None = None  # ner: each record's gold tags
        self.n_words: list = []  # ner: each record's number of words


class FinetuneTask:
    def __init__(self, spec: Spec, model, featurizer, data: Data, train_rows: np.ndarray,
                 val_rows: np.ndarray, *, seed: int = 0, class_weights: np.ndarray | None = None,
                 urt: bool = False, select: str | None = None, save_extra=None):
        self.spec, self.model, self.featurizer, self.data = spec, model, featurizer, data
        self.train_rows, self.val_rows, self.seed, self.urt = train_rows, val_rows, seed, urt
        self.class_weights = None if class_weights is None else torch.as_tensor(
            class_weights, dtype=torch.float32)
        name = select or SELECT[spec.task][0]
        self.select = (name, name not in LOWER_IS_BETTER)
        self._save_extra = save_extra
        self.validation: dict = {}

    # ---------------------------------------------------------------- Task protocol

    def batches(self, epoch: int, global_batch: int) -> "Batches":
        generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        order = self.train_rows[torch.randperm(len(self.train_rows), generator=generator).numpy()]
        lengths = self.data.prepared.lengths
        if self.urt and self.spec.kind == "timeline":
            lengths = uniform_truncation(lengths, order, generator)
        size = min(global_batch, len(order))
        groups = [order[i:i + size] for i in range(0, len(order) - size + 1, size)]
        return Batches(self, groups, lengths)

    def eval_batches(self, global_batch: int) -> "Batches":
        rows = self.val_rows
        return Batches(self, [rows[i:i + global_batch] for i in range(0, len(rows), global_batch)],
                       self.data.prepared.lengths)

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        targets = batch["targets"]
        if targets.shape[0] == 0:  # a rank's empty share of a short validation batch
            zero = torch.zeros((), device=targets.device)
            return zero, zero
        out = models.logits(model, self.spec.kind, batch).float()
        weights = None if self.class_weights is None else self.class_weights.to(out.device)
        return task_loss(self.spec.task, out, targets, weights)

    def tokens(self, batch: dict) -> int:
        if "attention_mask" in batch:
            return int(batch["attention_mask"].sum())
        return int(batch["lengths"].sum())

    def flops_per_token(self) -> float | None:
        return None

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self.model.save_pretrained(directory)
        self.spec.save(directory)
        if self._save_extra is not None:
            self._save_extra(directory)

    def validate(self, model, rt) -> dict:
        """Metrics on every validation row (each rank computes them all, identically)."""
        if len(self.val_rows) == 0:
            return {}
        from ehrkit.finetune.score import row_metrics, score_rows

        raw = score_rows(model, self.featurizer, self.data, self.val_rows, rt)
        self.validation = row_metrics(self.spec, self.data, self.val_rows, raw)
        return self.validation

    def collate(self, rows: np.ndarray, lengths: np.ndarray) -> dict:
        batch = self.featurizer.collate(self.data.prepared, rows, lengths)
        if self.spec.task == "ner":
            prepared = self.data.prepared
            labels, _ = pad_rows(self.data.labels, prepared.offsets, rows, -100, lengths)
            batch["targets"] = torch.from_numpy(labels)
        else:
            batch["targets"] = torch.from_numpy(self.data.y[rows])
        return batch


class Batches(Sequence):
    """An epoch's batches, padded when taken (an epoch of padded tensors need not fit)."""

    def __init__(self, task: FinetuneTask, groups: list, lengths: np.ndarray):
        self.task, self.groups, self.lengths = task, groups, lengths

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict:
        return self.task.collate(self.groups[index], self.lengths)


def task_loss(task: str, out: torch.Tensor, targets: torch.Tensor,
              weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss, items) for one batch's outputs and targets."""
    F = torch.nn.functional
    if task == "ner":
        flat, gold = out.reshape(-1, out.shape[-1]), targets.reshape(-1)
        known = gold != -100
        loss = F.cross_entropy(flat, gold.clamp(min=0), weight=weights, reduction="none")
        return (loss * known).sum(), known.sum()
    known = ~torch.isnan(targets)
    y = torch.nan_to_num(targets)
    if task == "multiclass":
        rows = known[:, 0]
        loss = F.cross_entropy(out, y[:, 0].long(), weight=weights, reduction="none")
        return (loss * rows).sum(), rows.sum()
    if task == "regression":
        loss = (out[:, :1] - y) ** 2
        return (loss * known).sum(), known.sum()
    loss = F.binary_cross_entropy_with_logits(out, y, pos_weight=weights, reduction="none")
    return (loss * known).sum(), known.sum()


def uniform_truncation(lengths: np.ndarray, rows: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """FMs-for-EHRs' URT: each training timeline cut at a position drawn uniformly from
    [1, length), so the model also learns from partial timelines (lengths of 1 stay)."""
    out = lengths.copy()
    draws = torch.rand(len(rows), generator=generator, dtype=torch.float64).numpy()
    n = lengths[rows]
    cut = 1 + np.floor(draws * np.maximum(n - 1, 1)).astype(np.int64)
    out[rows] = np.where(n > 1, np.minimum(cut, n - 1), n)
    return out


def class_weights(task: str, y: np.ndarray, outputs: int) -> np.ndarray:
    """Balanced weights from the training targets: binary and multilabel `pos_weight`
    (negatives / positives per label), multiclass n / (K x count) per class (sklearn's
    'balanced'); ner uses the latter over tags."""
    if task in ("binary", "multilabel"):
        known = ~np.isnan(y)
        pos = np.nansum(np.where(known, y, 0), axis=0)
        neg = known.sum(axis=0) - pos
        return np.where(pos > 0, neg / np.maximum(pos, 1), 1.0).astype(np.float32)
    values = y[~np.isnan(y)].astype(np.int64) if task != "ner" else y[y >= 0].astype(np.int64)
    counts = np.bincount(values, minlength=outputs).astype(np.float64)
    return np.where(counts > 0, len(values) / (outputs * np.maximum(counts, 1)), 1.0).astype(np.float32)


def mix_seed(*values: int) -> int:
    """One seed from several (run seed, epoch, ...), well mixed."""
    state = np.random.SeedSequence([v % 2**63 for v in values]).generate_state(1, np.uint64)[0]
    return int(state >> 1)
