"""Model directories as encoders: one adapter per kind of model, chosen by `config.json`.

An adapter turns a chunk of input records into `Prepared` rows (token ids or series, and each
row's number of real positions) and a batch of those rows into per-position states
[batch, positions, dim], right-padded to the batch's longest row. Pooling, batching and writing
are the runner's (ehrkit.embed.run), the same for every kind.

Kinds (`ADAPTERS`, keyed by config.json's `model_type`; add fine-tuned classifiers there):
- `bert`: a BERT masked LM (or any BERT checkpoint), notes tokenised with the saved tokenizer;
- `llama`: a causal LM on timelines (`vocab.json` names PAD);
- `ehrkit-gru`: the multi-label GRU on hourly series.
Weights are read from safetensors only; nothing is downloaded or unpickled.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from ehrkit.embed.batching import pad_rows
from ehrkit.embed.pooling import POOLS
from ehrkit.errors import DataError, UsageError

GRU_POOLS = ("last", "layers")
# Fields that are model inputs: never passed through to embedding records.
INPUT_FIELDS = ("text", "sentences", "input_ids", "times", "values", "mask", "hours")
_WEIGHTS_HINT = "a model directory holds config.json and model.safetensors (weights are never " \
                "unpickled), as written by `ehrkit pretrain`"


@dataclass(frozen=True)
class EncoderOptions:
    pool: str | None = None  # default: cls (BERT), last (Llama), layers (GRU)
    layer: int | None = None  # transformers: hidden_states[layer] (default -1); GRU: one layer
    hour: int | None = None  # GRU: the state after this many hours (1-based), not the last hour
    text_field: str = "text"
    input_field: str = "input_ids"
    max_length: int | None = None  # tokens; default: the model's maximum positions


@dataclass
class Prepared:
    """A chunk's rows ready for the model. `lengths` counts each row's positions to run and
    pool (0: nothing to embed, the embedding is null)."""

    lengths: np.ndarray
    truncated: int = 0
    flat: np.ndarray | None = None  # token ids of every row, concatenated
    offsets: np.ndarray | None = None  # [rows + 1] into flat
    series: np.ndarray | None = None  # [rows, hours, features] float32
    types: np.ndarray | None = None  # sentence pairs: segment ids (0, 1) aligned with flat


# ----------------------------------------------------------------------------- loading


def load_encoder(directory: str | Path, options: EncoderOptions = EncoderOptions()) -> "Encoder":
    """The adapter for a model directory, on the CPU and in eval mode."""
    directory = Path(directory)
    config = read_config(directory)
    kind = config.get("model_type")
    if kind not in ADAPTERS:
        raise DataError(f"{directory}: model type {kind!r} cannot be embedded with",
                        hint=f"supported model types: {', '.join(ADAPTERS)}")
    return ADAPTERS[kind](directory, config, options)


def read_config(directory: Path) -> dict:
    if not directory.is_dir():
        raise DataError(f"{directory}: no such model directory",
                        hint="--model takes a local directory written by `ehrkit pretrain` or "
                             "transformers' save_pretrained; nothing is downloaded")
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataError(f"{directory}: no readable config.json, so not a model directory",
                        hint=_WEIGHTS_HINT) from None
    if not isinstance(config, dict):
        raise DataError(f"{directory}: config.json is not a JSON object", hint=_WEIGHTS_HINT)
    return config


def load_tokenizer(directory: Path):
    """A model directory's fast (Rust) tokenizer."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as err:
        raise DataError(f"{directory}: cannot load the tokenizer ({type(err).__name__})",
                        hint="a BERT model directory needs tokenizer.json or vocab.txt") from None
    if not tokenizer.is_fast:
        raise DataError(f"{directory}: the tokenizer has no fast (Rust) version")
    return tokenizer


def from_pretrained(cls, directory: Path, **kwargs):
    """A transformers model from a local directory, with safetensors weights that fit it."""
    try:
        model, info = cls.from_pretrained(directory, local_files_only=True, use_safetensors=True,
                                          attn_implementation="sdpa", output_loading_info=True,
                                          **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        raise DataError(f"{directory}: cannot load the model weights ({type(err).__name__})",
                        hint=_WEIGHTS_HINT) from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise DataError(f"{directory}: the weights lack {len(missing)} of the model's tensors "
                        f"(first: {missing[0]})", hint="is config.json the one saved with them?")
    return model.float().eval()


# ----------------------------------------------------------------------------- adapters


class Encoder:
    """What every adapter has: a model, a resolved pooling and layer, an output dimension."""

    kind = ""
    pools: tuple[str, ...] = POOLS
    default_pool = "cls"

    def __init__(self, directory: Path, options: EncoderOptions):
        self.directory, self.options = directory, options
        self.pool = options.pool or self.default_pool
        if self.pool not in self.pools:
            raise UsageError(f"--pool {self.pool}: a {self.kind} model pools with "
                             f"{' or '.join(self.pools)}")
        self.model: torch.nn.Module
        self.dim = 0
        self.max_length: int | None = None

    @property
    def pooling(self) -> str:
        """The pooling.pool mode over the states this adapter returns."""
        return self.pool

    def to(self, device: torch.device) -> "Encoder":
        self.model.to(device)
        return self

    def metadata(self) -> dict:
        meta = {"model": str(self.directory), "kind": self.kind, "pool": self.pool,
                "layer": self.layer, "dim": self.dim}
        if self.max_length is not None:
            meta["max_length"] = self.max_length
        return meta

    def prepare(self, table: pa.Table, source: str) -> Prepared:
        raise NotImplementedError

    def states(self, prepared: Prepared, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        raise NotImplementedError


class _TransformerEncoder(Encoder):
    """BERT and Llama: token ids in, hidden_states[layer] out (last_hidden_state for -1).
    Inputs longer than `max_length` keep their first tokens."""

    _min_length = 1  # BERT: 2, [CLS] and [SEP]

    def __init__(self, directory: Path, config: dict, options: EncoderOptions):
        super().__init__(directory, options)
        if options.hour is not None:
            raise UsageError("--hour goes with GRU models (series); token models embed whole inputs")
        layers = int(config.get("num_hidden_layers", 0))
        self.layer = -1 if options.layer is None else options.layer
        if not -(layers + 1) <= self.layer <= layers:
            raise UsageError(f"--layer {self.layer}: the model has {layers} layers (hidden states "
                             f"0..{layers}, 0 the embeddings, -1 the last)")
        positions = int(config.get("max_position_embeddings", 512))
        self.max_length = options.max_length or positions
        if not self._min_length <= self.max_length <= positions:
            raise UsageError(f"--max-length {self.max_length}: use {self._min_length} to {positions} "
                             f"(the model's positions)")
        self.dim = int(config.get("hidden_size", 0))
        self.pad_id = 0

    def states(self, prepared: Prepared, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        ids, mask = pad_rows(prepared.flat, prepared.offsets, rows, self.pad_id, prepared.lengths)
        inputs = {"input_ids": torch.from_numpy(ids).to(device),
                  "attention_mask": torch.from_numpy(mask).to(device)}
        inputs.update(self._extra_inputs(inputs["input_ids"]))
        deep = self.layer != -1
        out = self.model(**inputs, output_hidden_states=deep, return_dict=True)
        return out.hidden_states[self.layer] if deep else out.last_hidden_state

    def _extra_inputs(self, ids: torch.Tensor) -> dict:
        return {}


class BertEncoder(_TransformerEncoder):
    """Notes through a BERT encoder (the masked-LM head, if any, is not loaded)."""

    kind, default_pool, _min_length = "bert", "cls", 2

    def __init__(self, directory: Path, config: dict, options: EncoderOptions):
        super().__init__(directory, config, options)
        from tokenizers import Tokenizer
        from transformers import BertModel

        tokenizer = load_tokenizer(directory)
        self.model = from_pretrained(BertModel, directory, add_pooling_layer=False)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # A private copy: truncation set here must not change the tokenizer object.
        self._tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_length)

    def prepare(self, table: pa.Table, source: str) -> Prepared:
        return encode_notes(self._tokenizer, table, self.options.text_field, source)


class LlamaEncoder(_TransformerEncoder):
    """Timelines (sequence records) through a Llama-shaped causal LM."""

    kind, default_pool = "llama", "last"

    def __init__(self, directory: Path, config: dict, options: EncoderOptions):
        super().__init__(directory, config, options)
        from transformers import LlamaModel

        self.pad_id = timeline_pad(directory, config)
        self.end_ids = _timeline_ends(directory)
        self.vocab_size = int(config.get("vocab_size", 0))
        self.model = from_pretrained(LlamaModel, directory)

    def prepare(self, table: pa.Table, source: str) -> Prepared:
        return encode_timelines(table, self.options.input_field, self.pad_id, self.vocab_size,
                                self.max_length, source, self.end_ids)

    def _extra_inputs(self, ids: torch.Tensor) -> dict:
        # Right padding and positions 0..n-1 for every row: padding never shifts a position.
        positions = torch.arange(ids.shape[1], device=ids.device)
        return {"position_ids": positions.expand(ids.shape[0], -1), "use_cache": False}


def _timeline_ends(directory: Path) -> list[int]:
    """The ids of TL_END and TRUNC: the source's representation is the state just before them."""
    vocab = directory / "vocab.json"
    if not vocab.is_file():
        return []
    from ehrkit.timeline.vocab import Vocabulary

    index = Vocabulary.load(vocab).index
    return [index[name] for name in ("TL_END", "TRUNC") if name in index]


def _before_end(flat: np.ndarray, offsets: np.ndarray, end_ids: list[int]) -> np.ndarray:
    """Per row, the number of tokens before its first TL_END or TRUNC (all of them if none), so
    that `last` pools the last real event as FMs-for-EHRs does (methods.md 3.6)."""
    n = len(offsets) - 1
    lengths = np.diff(offsets).astype(np.int64)
    if not end_ids or flat.size == 0:
        return lengths
    at = np.flatnonzero(np.isin(flat, end_ids))
    rows = np.searchsorted(offsets, at, side="right") - 1
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, rows, at - offsets[rows])
    return np.minimum(lengths, first)


def timeline_pad(directory: Path, config: dict) -> int:
    vocab = directory / "vocab.json"
    if vocab.is_file():
        from ehrkit.timeline.vocab import PAD, Vocabulary

        return Vocabulary.load(vocab).index[PAD]
    if config.get("pad_token_id") is not None:
        return int(config["pad_token_id"])
    raise DataError(f"{directory}: no vocab.json and no pad_token_id in config.json",
                    hint="a causal-LM run directory from `ehrkit pretrain --objective clm` has both")


class GruEncoder(Encoder):
    """Hourly series through the multi-label GRU: every layer's state at an hour (Gupta et al.'s
    z_tau, `layers`) or one layer's (`last`)."""

    kind, pools, default_pool = "gru", GRU_POOLS, "layers"

    def __init__(self, directory: Path, config: dict, options: EncoderOptions):
        if options.pool is None and options.layer is not None:
            options = dataclasses.replace(options, pool="last")  # one layer was asked for
        super().__init__(directory, options)
        from ehrkit.models.gru import GRUClassifier

        if options.max_length is not None:
            raise UsageError("--max-length goes with token models; for series use --hour")
        try:
            self.model = GRUClassifier.from_pretrained(directory).eval()
        except (OSError, RuntimeError, TypeError) as err:
            raise DataError(f"{directory}: cannot load the GRU ({type(err).__name__})",
                            hint=_WEIGHTS_HINT) from None
        layers, hidden = self.model.config.num_layers, self.model.config.hidden_size
        if self.pool == "layers":
            if options.layer is not None:
                raise UsageError("--layer picks one layer: use it with --pool last, not --pool layers")
            self.layer, self.dim = None, layers * hidden
        else:
            self.layer = -1 if options.layer is None else options.layer
            if not -layers <= self.layer < layers:
                raise UsageError(f"--layer {self.layer}: the GRU has {layers} layers "
                                 f"(0..{layers - 1}, -1 the top)")
            self.dim = hidden

    @property
    def pooling(self) -> str:
        return "last"  # states stop at the chosen hour, so its state is the last one

    def metadata(self) -> dict:
        return {**super().metadata(), "hour": self.options.hour}

    def prepare(self, table: pa.Table, source: str) -> Prepared:
        prepared = encode_series(table, self.model.config.input_size, source)
        if self.options.hour is not None:
            prepared.lengths = np.minimum(prepared.lengths, self.options.hour)
        return prepared

    def states(self, prepared: Prepared, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        width = int(prepared.lengths[rows].max())
        x = torch.from_numpy(np.ascontiguousarray(prepared.series[rows, :width])).to(device)
        # fp32 even under the runner's bf16 autocast: the GRU is small, and cuDNN's RNNs do not
        # all take bf16
        with torch.autocast(device_type=device.type, enabled=False):
            states = self.model.hidden_states(x)  # [layers, batch, hours, hidden]
        if self.pool == "layers":
            return states.permute(1, 2, 0, 3).reshape(x.shape[0], width, -1)
        return states[self.layer]


ADAPTERS = {"bert": BertEncoder, "llama": LlamaEncoder, "ehrkit-gru": GruEncoder}


# ----------------------------------------------------------------------------- inputs
# Records to model inputs, shared with fine-tuning and `ehrkit predict` (ehrkit.finetune).


def encode_notes(tokenizer, table: pa.Table, field: str, source: str) -> Prepared:
    """Note texts through a `tokenizers.Tokenizer` (special tokens and truncation as it is
    configured); rows without text get length 0."""
    texts = note_texts(table, field, source)
    present = ~np.asarray(texts.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    encodings = encode(texts.fill_null("").to_pylist())
    ids = [e.ids for e in encodings]
    sizes = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(sizes.sum()))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    truncated = sum(1 for e, keep in zip(encodings, present) if keep and e.overflowing)
    return Prepared(np.where(present, sizes, 0), truncated, flat, offsets)


def encode_timelines(table: pa.Table, field: str, pad_id: int, vocab_size: int, max_length: int,
                     source: str, end_ids: list[int] | None = None) -> Prepared:
    """Token timelines, right padding removed, cut to their first `max_length` tokens (and
    before the first of `end_ids`, when given)."""
    from ehrkit.train.clm import timeline_tokens

    flat, offsets = timeline_tokens(table, field, pad_id, source)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= vocab_size):
        raise DataError(f"{source}: field '{field}' has token ids outside the model's "
                        f"vocabulary 0..{vocab_size - 1}",
                        hint="tokenize with the vocabulary the model was trained on")
    full = np.minimum(np.diff(offsets), _before_end(flat, offsets, end_ids or []))
    lengths = np.minimum(full, max_length)
    return Prepared(lengths, int((full > max_length).sum()), flat, offsets)


def encode_series(table: pa.Table, input_size: int, source: str) -> Prepared:
    """Hourly series (values and masks side by side); a stay's length counts at least its
    first hour, as the GRU's head reads it."""
    from ehrkit.train.multilabel import series_inputs

    try:
        inputs, lengths = series_inputs(table, source)
    except ValueError:
        raise DataError(f"{source}: the series of one chunk must have the same number of "
                        "hours and variables", hint="use records from `ehrkit timeline series`"
                        ) from None
    if inputs.shape[2] != input_size:
        raise DataError(f"{source}: series have {inputs.shape[2]} values + mask columns per "
                        f"hour; the GRU was trained on {input_size}")
    hours = max(inputs.shape[1], 1)
    return Prepared(np.clip(lengths, 1, hours).astype(np.int64), series=inputs)



def note_texts(table: pa.Table, field: str, source: str) -> pa.Array:
    """The note text of every row, null where there is none (see ehrkit.notes.fields)."""
    from ehrkit.notes.fields import note_text

    return note_text(table, field, source)[1]


__all__ = ["ADAPTERS", "INPUT_FIELDS", "EncoderOptions", "Encoder", "Prepared", "encode_notes",
           "encode_series", "encode_timelines", "load_encoder", "note_texts"]
