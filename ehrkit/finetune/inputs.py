"""Records to batches for fine-tuning and prediction, per input kind (ehrkit.finetune.spec).

`Featurizer.prepare` turns a table's rows into `Prepared` rows (ragged token ids, or series)
with the same encoders `ehrkit embed` uses; `collate` pads some of them into a batch of
tensors. Token rows are right-padded, except timelines, which are left-padded so that the last
position is each timeline's last real token. `lengths` lets training cut rows short (uniform
random truncation of timelines).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from ehrkit.embed.batching import pad_rows
from ehrkit.embed.models import Prepared, encode_notes, encode_series, encode_timelines
from ehrkit.finetune.spec import Spec


class Featurizer:
    def __init__(self, spec: Spec, model: torch.nn.Module, tokenizer=None):
        self.spec = spec
        # timelines: the model's config names PAD (set from vocab.json when it was built)
        self.pad_id = int(getattr(model.config, "pad_token_id", 0) or 0)
        self.input_size = getattr(model.config, "input_size", 0)
        self.vocab_size = int(getattr(model.config, "vocab_size", 0) or 0)
        self._backend, self.tokenizer = None, tokenizer
        if tokenizer is not None:
            from tokenizers import Tokenizer

            # A private copy: truncation set here must not change the tokenizer object.
            self._backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
            self._backend.no_padding()
            self._backend.enable_truncation(spec.max_length)
            self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def prepare(self, table: pa.Table, source: str) -> Prepared:
        spec = self.spec
        if spec.kind == "text":
            return encode_notes(self._backend, table, spec.text_field, source)
        if spec.kind == "timeline":
            return encode_timelines(table, spec.input_field, self.pad_id, self.vocab_size,
                                    spec.max_length, source)
        if spec.kind == "series":
            return encode_series(table, self.input_size, source)
        raise ValueError(f"prepare: {spec.kind} inputs are windows (ehrkit.finetune.ner)")

    def collate(self, prepared: Prepared, rows: np.ndarray,
                lengths: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Model inputs for `rows` (no targets)."""
        lengths = prepared.lengths if lengths is None else lengths
        if self.spec.kind == "series":
            width = max(int(lengths[rows].max()), 1)
            series = np.ascontiguousarray(prepared.series[rows, :width])
            return {"inputs": torch.from_numpy(series),
                    "lengths": torch.from_numpy(lengths[rows].astype(np.int64))}
        ids, mask = pad_rows(prepared.flat, prepared.offsets, rows, self.pad_id, lengths,
                             left=self.spec.kind == "timeline")
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
