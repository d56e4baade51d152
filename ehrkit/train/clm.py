"""The causal-LM objective on token timelines (methods.md 3.4): a from-scratch Llama-shaped model
learns next-token prediction on packed timelines.

Packing follows the source: the training timelines are shuffled, each is followed by k PAD
tokens with k ~ Poisson(`pad_between`) (0 packs back to back, as the source's later code does),
everything is concatenated and cut into fixed `chunk`-token rows; a timeline may straddle two
rows and there is no cross-timeline attention mask. The packing is redone every epoch from a
generator seeded by (seed, epoch), so a resumed run sees the same rows; the tail that does not
fill a whole global batch is dropped. Validation is packed once, in input order, with fixed
Poisson draws (the same for every run seed, so validation losses compare across runs); its last
row is completed with PAD and its last global batch may be partial, so every validation token is
scored.

Loss: next-token cross entropy summed over positions whose *target* is not PAD. The source
(TRL on raw ids) also trained on PAD targets, i.e. on guessing the Poisson run lengths, which
adds noise to the loss and says nothing about patients; `loss_on_pad=True` reproduces it.

Input records: `input_ids` (or `input_field`) lists from `timeline tokenize`. Right padding is
stripped first (by `length` when present, else trailing PAD ids); TRUNC tokens are kept, they are
real tokens of truncated timelines. With a `split` field, `train` rows train, `tuning` rows
validate, `held_out` rows are dropped (and counted), as are rows with no split when others have
one; with no `tuning` rows, a seeded `val_fraction` of the training patients validates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ehrkit import log
from ehrkit.errors import DataError, MissingFieldError, UsageError
from ehrkit.timeline.vocab import PAD, Vocabulary

VAL_SEED = 42  # validation packing: the same PAD runs whatever the run's seed (source: 42)


@dataclass(frozen=True)
class ClmOptions:
    preset: str = "tiny"  # model size: tiny, small, base (ehrkit.models.presets)
    vocab: str | None = None  # the timeline vocabulary JSON from `timeline tokenize --fit` (required)
    chunk: int = 1024  # tokens per packed row (the model's maximum length)
    pad_between: float = 7.0  # Poisson mean of the PAD run after each timeline; 0: back to back
    val_fraction: float = 0.05  # of patients, when the records have no `tuning` split
    input_field: str = "input_ids"
    loss_on_pad: bool = False  # also score PAD targets, as the source did

    @classmethod
    def from_dict(cls, options: dict | None) -> "ClmOptions":
        """Options from a dict; None values take the default, unknown keys are refused."""
        options = {k: v for k, v in (options or {}).items() if v is not None}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(f"causal LM: unknown option(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        made = cls(**options)
        made.check()
        return made

    def check(self) -> None:
        if not self.vocab:
            raise UsageError("causal-LM pretraining needs the timeline vocabulary: pass --vocab "
                             "(the JSON written by `ehrkit timeline tokenize --fit`)")
        if int(self.chunk) != self.chunk or self.chunk < 2:
            raise UsageError(f"--chunk must be an integer of at least 2 tokens (got {self.chunk})")
        if not (self.pad_between >= 0 and math.isfinite(self.pad_between)):
            raise UsageError(f"--pad-between must be a finite number >= 0 (got {self.pad_between})")
        if not 0 <= self.val_fraction < 1:
            raise UsageError(f"--val-fraction must be in [0, 1) (got {self.val_fraction})")


def build_task(table: pa.Table, options: dict, seed: int, source: str) -> "ClmTask":
    """The causal-LM Task for `ehrkit pretrain` (see ehrkit.train.loop.Task)."""
    return ClmTask(table, ClmOptions.from_dict(options), seed=seed, source=source)


class ClmTask:
    def __init__(self, table: pa.Table, options: ClmOptions, *, seed: int = 0, source: str = "input"):
        self.options, self.seed = options, seed
        self.chunk = int(options.chunk)
        path = Path(options.vocab)
        self.vocab = Vocabulary.load(path)
        self._vocab_bytes = path.read_bytes()
        self.pad_id = self.vocab.index[PAD]
        flat, offsets = timeline_tokens(table, options.input_field, self.pad_id, source)
        if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= len(self.vocab)):
            raise DataError(f"{source}: field '{options.input_field}' has token ids outside the "
                            f"vocabulary's 0..{len(self.vocab) - 1}",
                            "tokenize and pretrain with the same vocabulary (--vocab)")
        train_rows, val_rows, counts = _choose_rows(table, offsets, options.val_fraction, seed)
        if train_rows.size == 0:
            raise DataError(f"{source}: no training timelines (rows with split 'train', or any "
                            "rows when there is no split)")
        self.train = _select(flat, offsets, train_rows)
        self.val = _select(flat, offsets, val_rows)
        self.model = _build_model(options.preset, self.vocab, self.chunk, seed)
        self._packed: tuple[int, torch.Tensor] | None = None
        first = self._pack_train(0)
        self.summary = {
            "timelines": len(table), "train_timelines": int(train_rows.size),
            "val_timelines": int(val_rows.size), **counts,
            "tokens": int(self.train[0].size), "val_tokens": int(self.val[0].size),
            "chunks": len(first) // self.chunk, "pad_tokens": int((first == self.pad_id).sum()),
            "chunk": self.chunk, "pad_between": float(options.pad_between),
            "loss_on_pad": bool(options.loss_on_pad), "preset": options.preset,
            "vocab_size": len(self.vocab), "parameters": _parameters(self.model),
            "non_embedding_parameters": _parameters(self.model, embeddings=False),
        }
        if val_rows.size == 0:
            log.warn("causal LM: no validation timelines; training runs without evaluation")

    # ---------------------------------------------------------------- Task protocol

    def batches(self, epoch: int, global_batch: int) -> list[dict]:
        stream = self._pack_train(epoch)
        rows = len(stream) // self.chunk
        n = rows // global_batch
        if n == 0:
            raise DataError(f"the training timelines pack into {rows} rows of {self.chunk} tokens, "
                            f"fewer than one global batch of {global_batch}",
                            "use a smaller --chunk or --batch-size, or more timelines")
        grid = stream[:n * global_batch * self.chunk].view(n, global_batch, self.chunk)
        return [{"input_ids": grid[i]} for i in range(n)]

    def eval_batches(self, global_batch: int) -> list[dict]:
        if self.val[0].size == 0:
            return []
        generator = torch.Generator().manual_seed(VAL_SEED)
        order = torch.arange(len(self.val[1]) - 1)
        stream = pack(*self.val, order, self.options.pad_between, self.pad_id, generator)
        rows = math.ceil(len(stream) / self.chunk)
        full = torch.full((rows * self.chunk,), self.pad_id, dtype=stream.dtype)
        full[:len(stream)] = stream
        grid = full.view(rows, self.chunk)
        return [{"input_ids": grid[i:i + global_batch]} for i in range(0, rows, global_batch)]

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        ids = batch["input_ids"].long()
        if ids.shape[0] == 0:  # a rank's share of a short last validation batch
            zero = torch.zeros((), device=ids.device)
            return zero, zero
        logits = model(input_ids=ids, use_cache=False).logits[:, :-1]
        targets = ids[:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        if self.options.loss_on_pad:
            return losses.sum(), torch.tensor(float(targets.numel()), device=ids.device)
        scored = (targets != self.pad_id).reshape(-1)
        return (losses * scored).sum(), scored.sum()

    def tokens(self, batch: dict) -> int:
        return int((batch["input_ids"] != self.pad_id).sum())

    def flops_per_token(self) -> float | None:
        """6 x parameters doing matmuls (all but the input embedding; the output projection
        counts) + 12 x layers x hidden x chunk for attention scores (the PaLM appendix B
        estimate, not halved for the causal mask)."""
        config = self.model.config
        attention = 12 * config.num_hidden_layers * config.hidden_size * self.chunk
        return 6.0 * self.summary["non_embedding_parameters"] + attention

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self.model.save_pretrained(directory)
        (directory / "vocab.json").write_bytes(self._vocab_bytes)

    # ---------------------------------------------------------------- packing

    def _pack_train(self, epoch: int) -> torch.Tensor:
        if self._packed is None or self._packed[0] != epoch:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            order = torch.randperm(len(self.train[1]) - 1, generator=generator)
            stream = pack(*self.train, order, self.options.pad_between, self.pad_id, generator)
            self._packed = (epoch, stream)
        return self._packed[1]


def epoch_seed(seed: int, epoch: int) -> int:
    """One 32-bit generator seed per (run seed, epoch), well mixed (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, 0xC1A]).generate_state(1)[0])


def pack(flat: np.ndarray, offsets: np.ndarray, order: torch.Tensor, pad_between: float,
         pad_id: int, generator: torch.Generator) -> torch.Tensor:
    """Timelines (flat tokens + offsets) in `order`, each followed by Poisson(pad_between) PAD
    tokens drawn from `generator`, as one int32 stream (vectorised: no loop over timelines)."""
    order = order.numpy()
    lengths = np.diff(offsets)[order]
    if pad_between > 0:
        pads = torch.poisson(torch.full((len(order),), float(pad_between), dtype=torch.float64),
                             generator=generator).numpy().astype(np.int64)
    else:
        pads = np.zeros(len(order), dtype=np.int64)
    sizes = lengths + pads
    stream = np.full(int(sizes.sum()), pad_id, dtype=np.int32)
    n = int(lengths.sum())
    if n:
        before = np.cumsum(lengths) - lengths  # tokens of earlier timelines, in packed order
        within = np.arange(n, dtype=np.int64) - np.repeat(before, lengths)
        source = np.repeat(offsets[:-1][order], lengths) + within
        target = np.repeat(np.cumsum(sizes) - sizes, lengths) + within
        stream[target] = flat[source]
    return torch.from_numpy(stream)


# ---------------------------------------------------------------- records


def timeline_tokens(table: pa.Table, field: str, pad_id: int, source: str = "input"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Every row's real tokens as (flat int32 tokens, offsets [rows + 1]), right padding removed:
    by `length` when present (and not null), else by stripping trailing PAD ids."""
    if field not in table.column_names:
        raise MissingFieldError(source, field, table.column_names, "--input-field")
    column = table[field].combine_chunks() if len(table) else pa.array([], pa.list_(pa.int32()))
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)) \
            or not pa.types.is_integer(column.type.value_type):
        raise DataError(f"{source}: field '{field}' must be a list of token ids "
                        f"(found {column.type})", "use the output of `ehrkit timeline tokenize`")
    column = pc.fill_null(column, pa.scalar([], column.type)) if column.null_count else column
    list_offsets = np.asarray(column.offsets.to_numpy(), dtype=np.int64)
    values = np.asarray(column.values.to_numpy(zero_copy_only=False), dtype=np.int32)
    starts, ends = list_offsets[:-1], list_offsets[1:]
    real = _real_ends(values, starts, ends, pad_id)
    if "length" in table.column_names:
        given = np.asarray(pc.fill_null(table["length"], -1).to_numpy(), dtype=np.int64)
        real = np.where(given >= 0, np.minimum(ends, starts + given), real)
    lengths = np.maximum(real - starts, 0)
    flat = values[_ranges(starts, lengths)]
    return flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _real_ends(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, pad_id: int) -> np.ndarray:
    """One past each row's last non-PAD token (its start when it is all PAD)."""
    if values.size == 0:
        return starts.copy()
    # Offsets are contiguous, so reducing from each non-empty row's start to the next one's
    # covers exactly [start, end); cut the values at the last end for the final row.
    values = values[:ends[-1]]
    position = np.where(values != pad_id, np.arange(values.size, dtype=np.int64), -1)
    last = np.full(len(starts), -1, dtype=np.int64)
    nonempty = ends > starts
    if nonempty.any():
        last[nonempty] = np.maximum.reduceat(position, starts[nonempty])
    return np.where(last >= starts, last + 1, starts)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges [start, start + length) per row."""
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths
    return np.repeat(starts, lengths) + (np.arange(total, dtype=np.int64) - np.repeat(before, lengths))


def _select(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.diff(offsets)[rows]
    tokens = flat[_ranges(offsets[:-1][rows], lengths)]
    return tokens, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _choose_rows(table: pa.Table, offsets: np.ndarray, val_fraction: float, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(training rows, validation rows, counts); empty timelines are skipped."""
    n = len(table)
    nonempty = np.diff(offsets) > 0
    counts = {"dropped_held_out": 0, "dropped_unsplit": 0, "dropped_empty": int((~nonempty).sum()),
              "validation": "none"}
    split = None
    if "split" in table.column_names and table["split"].null_count < n:
        split = np.asarray(table["split"].to_pylist(), dtype=object)
    if split is not None:
        train, val = split == "train", split == "tuning"
        held_out = split == "held_out"
        counts["dropped_held_out"] = int(held_out.sum())
        counts["dropped_unsplit"] = int((~(train | val | held_out)).sum())
        if counts["dropped_unsplit"]:
            log.warn(f"causal LM: {counts['dropped_unsplit']} timelines have no known split "
                     "(train, tuning, held_out) and are left out")
        if val.any():
            counts["validation"] = "tuning split"
            return np.flatnonzero(train & nonempty), np.flatnonzero(val & nonempty), counts
    else:
        train = np.ones(n, dtype=bool)
    val = _fraction(table, val_fraction, seed) & train
    if val.any():
        counts["validation"] = f"{val_fraction:g} of patients"
    return np.flatnonzero(train & ~val & nonempty), np.flatnonzero(val & nonempty), counts


def _fraction(table: pa.Table, fraction: float, seed: int) -> np.ndarray:
    """A seeded fraction of the rows, by patient when the records carry `patient_id` (so no
    patient is in both training and validation)."""
    rng = np.random.default_rng(seed)
    if fraction <= 0 or len(table) == 0:
        return np.zeros(len(table), dtype=bool)
    if "patient_id" in table.column_names:
        # by sorted patient id, so the choice does not depend on the order of the rows
        ids = np.asarray([str(v) for v in table["patient_id"].to_pylist()])
        _, inverse = np.unique(ids, return_inverse=True)
        return (rng.random(int(inverse.max()) + 1) < fraction)[inverse]
    return rng.random(len(table)) < fraction


# ---------------------------------------------------------------- model


def _build_model(preset: str, vocab: Vocabulary, chunk: int, seed: int):
    """A Llama-shaped causal LM from config (never downloaded), initialised from `seed`."""
    from transformers import LlamaForCausalLM

    from ehrkit.models.presets import llama_config

    config = llama_config(preset, vocab_size=len(vocab), max_length=chunk,
                          bos_token_id=vocab.index["TL_START"], eos_token_id=vocab.index["TL_END"],
                          pad_token_id=vocab.index[PAD])
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)


def _parameters(model, embeddings: bool = True) -> int:
    total = sum(p.numel() for p in model.parameters())
    if embeddings:
        return total
    return total - model.get_input_embeddings().weight.numel()
