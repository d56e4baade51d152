"""The multi-label objective on series records (Gupta et al.): a GRU trained on many binary
labels at once, e.g. 20 source phenotypes, whose hidden states later serve as features.

Labels are named by `--labels`: scalar fields (`mortality`), whole list fields (`phenotypes`),
or parts of them (`phenotypes[:20]`, `phenotypes[3]`). Missing label values are left out of
the loss. Validation rows: the `tuning` split when the records carry a `split` field, else a
seeded fraction of the stays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ehrkit.errors import DataError, MissingFieldError
from ehrkit.labels import label_columns
from ehrkit.models.gru import GRUClassifier, GRUConfig


def label_matrix(table: pa.Table, specs: list[str], source: str = "input") -> tuple[np.ndarray, list[str]]:
    """[rows, labels] float32 with NaN for missing, and the label names (specs: ehrkit.labels)."""
    columns = label_columns(table, specs, source, "--labels")
    if not columns:
        raise DataError("--labels names no label")
    matrix = [np.asarray(column.combine_chunks().cast(pa.float32()).to_numpy(zero_copy_only=False),
                         dtype=np.float32) for _, _, _, column in columns]
    return np.stack(matrix, axis=1), [name for name, _, _, _ in columns]


def series_inputs(table: pa.Table, source: str = "input") -> tuple[np.ndarray, np.ndarray]:
    """Inputs [rows, hours, values + masks] (missing values as 0) and lengths [rows]."""
    for name in ("values", "mask"):
        if name not in table.column_names:
            raise MissingFieldError(source, name, table.column_names)
    parts = []
    for name in ("values", "mask"):
        outer = table[name].combine_chunks()
        hours = pc.list_value_length(outer)
        inner = pc.list_flatten(outer)
        width = pc.max(pc.list_value_length(inner)).as_py() or 0
        flat = pc.list_flatten(inner).to_numpy(zero_copy_only=False)
        steps = pc.max(hours).as_py() or 0
        parts.append(np.nan_to_num(np.asarray(flat, dtype=np.float32)).reshape(len(table), steps, width))
    if "length" in table.column_names:
        lengths = np.asarray(table["length"].to_numpy(zero_copy_only=False), dtype=np.int64)
    else:
        lengths = np.full(len(table), parts[0].shape[1], dtype=np.int64)
    return np.concatenate(parts, axis=2), lengths


class MultilabelTask:
    def __init__(self, table: pa.Table, labels: list[str], *, hidden_size: int = 300,
                 num_layers: int = 2, dropout: float = 0.3, seed: int = 0,
                 val_fraction: float = 0.1, source: str = "input"):
        inputs, lengths = series_inputs(table, source)
        targets, names = label_matrix(table, labels, source)
        is_val = _validation_rows(table, val_fraction, seed)
        self.seed = seed
        self.train = _tensors(inputs[~is_val], lengths[~is_val], targets[~is_val])
        self.val = _tensors(inputs[is_val], lengths[is_val], targets[is_val])
        if len(self.train["inputs"]) == 0:
            raise DataError("no training rows: every row is in the validation split")
        config = GRUConfig(input_size=inputs.shape[2], num_labels=len(names),
                           hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
                           label_names=names)
        self.model = GRUClassifier(config)
        self.summary = {"rows": len(table), "train_rows": int((~is_val).sum()),
                        "val_rows": int(is_val.sum()), "labels": names}

    def batches(self, epoch: int, global_batch: int) -> list[dict]:
        n = len(self.train["inputs"])
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
        size = min(global_batch, n)
        return [{k: v[order[i:i + size]] for k, v in self.train.items()}
                for i in range(0, n - size + 1, size)]

    def eval_batches(self, global_batch: int) -> list[dict]:
        n = len(self.val["inputs"])
        return [{k: v[i:i + global_batch] for k, v in self.val.items()}
                for i in range(0, n, global_batch)]

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(batch["inputs"], batch["lengths"])
        known = ~torch.isnan(batch["targets"])
        targets = torch.nan_to_num(batch["targets"])
        losses = torch.nn.functional.binary_cross_entropy_with_logits(
            logits.float(), targets, reduction="none")
        return (losses * known).sum(), known.sum()

    def tokens(self, batch: dict) -> int:
        return int(batch["lengths"].sum())

    def flops_per_token(self) -> float | None:
        return None

    def save(self, directory: Path) -> None:
        self.model.save_pretrained(directory)


def _tensors(inputs: np.ndarray, lengths: np.ndarray, targets: np.ndarray) -> dict:
    return {"inputs": torch.from_numpy(np.ascontiguousarray(inputs)),
            "lengths": torch.from_numpy(lengths), "targets": torch.from_numpy(targets)}


def _validation_rows(table: pa.Table, fraction: float, seed: int) -> np.ndarray:
    if "split" in table.column_names:
        split = np.asarray(table["split"].to_pylist(), dtype=object)
        if (split == "tuning").any():
            return split == "tuning"
    rng = np.random.default_rng(seed)
    return rng.random(len(table)) < fraction


def build_task(table: pa.Table, options: dict, seed: int, source: str) -> MultilabelTask:
    """The `pretrain --objective multilabel` entry point."""
    labels = options.get("labels")
    if not labels:
        from ehrkit.errors import UsageError

        raise UsageError("--objective multilabel needs --labels (e.g. phenotypes[:20])")
    return MultilabelTask(table, list(labels), hidden_size=options.get("hidden_size", 300),
                          num_layers=options.get("num_layers", 2),
                          dropout=options.get("dropout", 0.3), seed=seed,
                          val_fraction=options.get("val_fraction", 0.1), source=source)
