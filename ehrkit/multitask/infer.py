"""Running heads over encoded rows: the encoder once per batch, then every head asked for.

Rows are sorted by length and batched by a budget of padded tokens (as `ehrkit embed` and
`ehrkit predict` do), so a row's outputs do not depend on its batch.
"""

from __future__ import annotations

import numpy as np
import torch

from ehrkit.embed.batching import Budget, pad_rows, plan
from ehrkit.finetune.score import BUDGET


def inputs(prepared, rows: np.ndarray, pad_id: int, lengths: np.ndarray | None = None) -> dict:
    """input_ids, attention_mask and (pairs) token_type_ids of some rows, right-padded."""
    ids, mask = pad_rows(prepared.flat, prepared.offsets, rows, pad_id, lengths)
    out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if prepared.types is not None:
        types, _ = pad_rows(prepared.types, prepared.offsets, rows, 0, lengths)
        out["token_type_ids"] = torch.from_numpy(types)
    return out


def run_heads(model, prepared, rows: np.ndarray, names: list[str], rt, pad_id: int,
              budget: Budget = BUDGET) -> dict[str, object]:
    """Each named head's raw outputs for `rows`, in their order: [rows, outputs] float32 for a
    [CLS] head, one [positions, tags] array per row for a token head."""
    lengths = np.zeros_like(prepared.lengths)
    lengths[rows] = prepared.lengths[rows]
    token = {n for n in names if model.tasks[n].head == "token"}
    found: dict[str, dict[int, np.ndarray]] = {n: {} for n in names}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), rt.autocast():
            for batch_rows in plan(lengths, budget):
                batch = {k: v.to(rt.device) for k, v in inputs(prepared, batch_rows, pad_id).items()}
                states = model.states(**batch)
                for name in names:
                    raw = model.head(name, states).float().cpu().numpy()
                    for i, row in enumerate(batch_rows):
                        found[name][int(row)] = raw[i, :int(prepared.lengths[row])] \
                            if name in token else raw[i]
    finally:
        model.train(was_training)
    out: dict[str, object] = {}
    for name in names:
        if name in token:
            out[name] = [found[name].get(int(r)) for r in rows]
        else:
            width = model.tasks[name].spec.outputs
            out[name] = np.stack([found[name].get(int(r), np.full(width, np.nan, np.float32))
                                  for r in rows]) if len(rows) else np.zeros((0, width), np.float32)
    return out
