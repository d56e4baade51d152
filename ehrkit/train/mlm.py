"""The masked-language-model objective on clinical notes (ClinicalBERT, RECITAL).

Two starts, exactly one of them:
- `init`: a local BERT directory (weights in safetensors, tokenizer files). Pretraining goes on
  with its vocabulary: ClinicalBERT's recipe and RECITAL's "further pretrained" models.
- `from_scratch`: a new uncased WordPiece vocabulary trained on the training notes (BERT
  normalizer and pre-tokenizer; [PAD] [UNK] [CLS] [SEP] [MASK] are ids 0-4) and a randomly
  initialised model of the named preset: RECITAL's "medical vocabulary" models. `vocab_size`
  (default 30522, BERT's) is an upper bound: two pieces are merged into a new one only if they
  occur together at least twice, so a small corpus runs out of merges and gets a small
  vocabulary (the summary has the real size). The embedding matrix is rounded up to a multiple
  of 64 rows; the extra rows are never produced by the tokenizer.
  `tokenizers`' WordPiece trainer is not deterministic (huggingface/tokenizers#1794: hash-map
  order decides ties), which would give each DDP rank, and a resumed run, another vocabulary.
  Its BPE trainer is deterministic when no continuing-subword prefix is involved, so the pieces
  are learnt by it over words marked with a leading U+2581 and then converted: a marked piece
  starts a word (`lisino`), an unmarked one continues it (`##pril`). WordPieceTrainer itself is
  a BPE trainer whose result is converted to WordPiece in the same way.

Notes of `exclude_ids` (admissions or patients held out for evaluation; ClinicalBERT issue #9
was such a leak) and `held_out` rows of a `split` field are dropped before anything is learnt,
the vocabulary included. Validation: the `tuning` split when present, else a seeded fraction of
the notes.

Packing (RoBERTa's FULL-SENTENCES): the sentences of all notes, in input order, fill sequences
`[CLS] s1 s2 ... [SEP]` of at most `max_length` tokens. A sequence ends when the next sentence
does not fit; a sentence longer than `max_length - 2` tokens fills the rest of the open sequence
and continues in the next ones. Where a note ends inside a sequence, a [SEP] comes before the
next note's first sentence. So every sequence but the corpus's last is full or could not take
the next sentence, and only the last is padded. Notes without a sentence list are one sentence.

Masking (BERT): in each sequence round(15%) of the non-special tokens, at least one, are
chosen; 80% of them become [MASK], 10% a random non-special token, 10% stay. Labels are the
original ids there and -100 elsewhere. The random draws come from a generator seeded by
(seed, epoch, batch index), so batches depend on nothing but these; validation batches use a
fixed seed, so validation losses are comparable across evaluations.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import BertForMaskedLM
from transformers.modeling_outputs import MaskedLMOutput

from ehrkit.errors import DataError, MissingFieldError, UsageError
from ehrkit.train.rows import drop_held_out, exclude, validation_notes
from ehrkit.train.wordpiece import SPECIALS, train_vocabulary, write_vocab

__all__ = ["SPECIALS", "MlmTask", "build_task", "train_vocabulary"]



@dataclass(frozen=True)
class MlmOptions:
    preset: str | None = None  # model size for from_scratch (default tiny); not with init
    max_length: int = 128
    init: str | None = None  # local BERT directory to continue pretraining
    from_scratch: bool = False
    vocab_size: int | None = None  # upper bound for from_scratch (default 30522)
    text_field: str = "text"
    sentences_field: str = "sentences"
    exclude_ids: str | None = None
    id_field: str | None = None
    val_fraction: float = 0.05
    mlm_probability: float = 0.15

    @classmethod
    def from_dict(cls, options: dict) -> "MlmOptions":
        """None means "not given"; unknown keys are an error rather than silently ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(f"mlm: unknown option(s) {', '.join(unknown)}")
        opts = cls(**{k: v for k, v in options.items() if v is not None})
        opts.check()
        return opts

    def check(self) -> None:
        if bool(self.init) == bool(self.from_scratch):
            raise UsageError("give exactly one of --init DIR (continue pretraining a BERT model) "
                             "and --from-scratch (train a new WordPiece vocabulary)")
        if self.init and (self.preset is not None or self.vocab_size is not None):
            raise UsageError("--preset and --vocab-size go with --from-scratch; with --init the "
                             "model directory fixes the size and the vocabulary")
        if self.max_length < 8:
            raise UsageError(f"--max-length {self.max_length}: use at least 8")
        if not 0 <= self.val_fraction < 1:
            raise UsageError(f"--val-fraction {self.val_fraction}: use a value in [0, 1)")
        if not 0 < self.mlm_probability < 1:
            raise UsageError(f"--mlm-probability {self.mlm_probability}: use a value in (0, 1)")
        if self.vocab_size is not None and self.vocab_size < 100:
            raise UsageError(f"--vocab-size {self.vocab_size}: use at least 100")


def build_task(table: pa.Table, options: dict, seed: int, source: str) -> "MlmTask":
    return MlmTask(table, MlmOptions.from_dict(options), seed, source)


class SparseHeadBertForMaskedLM(BertForMaskedLM):
    """BertForMaskedLM that, given `mlm_labels`, runs the prediction head on the masked positions
    only and returns the summed cross entropy. The head's vocabulary-sized matmul costs more
    than the whole encoder of the tiny and small presets; on 15% of the positions it does not.
    Without `mlm_labels` it is BertForMaskedLM; it is saved and loaded as BertForMaskedLM."""

    def forward(self, *args, mlm_labels: torch.Tensor | None = None, **kwargs):
        if mlm_labels is None:
            return super().forward(*args, **kwargs)
        hidden = self.bert(*args, **kwargs, return_dict=True).last_hidden_state
        where = mlm_labels != -100
        logits = self.cls(hidden[where]).float()
        loss = torch.nn.functional.cross_entropy(logits, mlm_labels[where], reduction="sum")
        return MaskedLMOutput(loss=loss, logits=logits)


class MlmTask:
    def __init__(self, table: pa.Table, opts: MlmOptions, seed: int = 0, source: str = "input"):
        self.opts, self.seed = opts, seed
        summary: dict = {"input_notes": table.num_rows}
        table, summary["excluded_notes"], summary["exclude_fields"] = exclude(
            table, opts.exclude_ids, opts.id_field, source)
        table, summary["held_out_notes"] = drop_held_out(table)
        texts, note_of = note_sentences(table, opts, source)
        is_val = validation_notes(table, opts.val_fraction, seed)
        train_sentence = ~is_val[note_of]
        if not train_sentence.any():
            raise DataError(f"{source}: no training notes", hint="check --exclude-ids and splits")
        if opts.init:
            self.model, self.tokenizer, new = load_init(opts.init, opts.max_length, seed)
            summary["init_new_weights"] = new
        else:
            self.tokenizer = train_vocabulary([t for t, keep in zip(texts, train_sentence) if keep],
                                              opts.vocab_size or 30522, opts.max_length)
            self.model = _new_model(opts, len(self.tokenizer), self.tokenizer.pad_token_id, seed)
        ids, lengths = encode(self.tokenizer, texts)
        train_token = np.repeat(train_sentence, lengths)
        self.train = pack(ids[train_token], lengths[train_sentence], note_of[train_sentence],
                          opts.max_length, self.tokenizer)
        self.val = pack(ids[~train_token], lengths[~train_sentence], note_of[~train_sentence],
                        opts.max_length, self.tokenizer)
        if len(self.train["lengths"]) == 0:
            raise DataError(f"{source}: the training notes hold no text", hint="check --text-field")
        specials = sorted(set(self.tokenizer.all_special_ids))
        self._special = torch.tensor(specials)
        self._random = torch.tensor(sorted(set(range(len(self.tokenizer))) - set(specials)))
        self.summary = {**summary, **self._describe(is_val, lengths, opts)}

    def _describe(self, is_val: np.ndarray, lengths: np.ndarray, opts: MlmOptions) -> dict:
        tokens = int(self.train["lengths"].sum())
        return {
            "notes": len(is_val), "train_notes": int((~is_val).sum()), "val_notes": int(is_val.sum()),
            "sentences": int((lengths > 0).sum()),
            "long_sentences": int((lengths > opts.max_length - 2).sum()),
            "sequences": len(self.train["lengths"]), "val_sequences": len(self.val["lengths"]),
            "tokens": tokens, "fill": round(tokens / (len(self.train["lengths"]) * opts.max_length), 4),
            "vocab_size": len(self.tokenizer), "embedding_rows": self.model.config.vocab_size,
            "vocabulary": "init" if opts.init else "trained", "max_length": opts.max_length,
            "mlm_probability": opts.mlm_probability,
            "parameters": sum(p.numel() for p in self.model.parameters()),
        }

    # ------------------------------------------------------------------ Task protocol

    def batches(self, epoch: int, global_batch: int) -> "Batches":
        n = len(self.train["lengths"])
        order = torch.randperm(n, generator=torch.Generator().manual_seed(_mix(self.seed, 0, epoch)))
        size = min(global_batch, n)
        return Batches(self, self.train, [order[i:i + size] for i in range(0, n - size + 1, size)],
                       (self.seed, 1, epoch))

    def eval_batches(self, global_batch: int) -> "Batches":
        n = len(self.val["lengths"])
        rows = [torch.arange(i, min(i + global_batch, n)) for i in range(0, n, global_batch)]
        return Batches(self, self.val, rows, (self.seed, 2))

    def loss(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        count = (batch["labels"] != -100).sum()
        if batch["input_ids"].shape[0] == 0:  # a rank's empty share of a short eval batch
            return torch.zeros((), device=count.device), count
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    mlm_labels=batch["labels"])
        return out.loss, count

    def tokens(self, batch: dict) -> int:
        return int(batch["attention_mask"].sum())

    def flops_per_token(self) -> float:
        """6 x encoder parameters, plus attention (12 x layers x length x hidden, as in PaLM),
        plus the prediction head on the masked share of the tokens."""
        c = self.model.config
        encoder = sum(p.numel() for p in self.model.bert.encoder.parameters())
        head = c.hidden_size * (c.hidden_size + c.vocab_size)
        return (6 * encoder + 12 * c.num_hidden_layers * self.opts.max_length * c.hidden_size
                + 6 * self.opts.mlm_probability * head)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        self.model.save_pretrained(directory)
        config = json.loads((directory / "config.json").read_text())
        config["architectures"] = ["BertForMaskedLM"]
        (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        self.tokenizer.save_pretrained(directory)
        if not (directory / "vocab.txt").exists():  # for BERT tools that read vocab.txt only
            write_vocab(directory / "vocab.txt", self.tokenizer.get_vocab())

    def mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return mask_tokens(input_ids, attention_mask, generator, self.opts.mlm_probability,
                           self.tokenizer.mask_token_id, self._special, self._random)


class Batches(Sequence):
    """An epoch's batches, masked when taken (an epoch of masked tensors would not fit)."""

    def __init__(self, task: MlmTask, data: dict, rows: list, seeds: tuple):
        self.task, self.data, self.rows, self.seeds = task, data, rows, seeds

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        rows = self.rows[index]
        ids = self.data["input_ids"][rows].long()
        positions = torch.arange(ids.shape[1])
        attention = (positions < self.data["lengths"][rows, None]).long()
        generator = torch.Generator().manual_seed(_mix(*self.seeds, index % len(self)))
        masked, labels = self.task.mask(ids, attention, generator)
        return {"input_ids": masked, "attention_mask": attention, "labels": labels}


def _mix(*values: int) -> int:
    """One generator seed from several integers, without collisions between (1, 23) and (12, 3)."""
    state = np.random.SeedSequence([v % 2**63 for v in values]).generate_state(1, np.uint64)[0]
    return int(state >> 1)


# ---------------------------------------------------------------------- masking


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator,
                probability: float, mask_id: int, special_ids: torch.Tensor,
                random_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, labels): BERT's 80/10/10 on round(probability x n) of each row's n
    non-special tokens (at least one)."""
    candidate = attention_mask.bool() & ~torch.isin(input_ids, special_ids)
    want = (candidate.sum(1) * probability).round().clamp(min=1)
    scores = torch.rand(input_ids.shape, generator=generator).masked_fill(~candidate, 2.0)
    ranked = scores.sort(dim=1).values
    threshold = ranked.gather(1, (want.long() - 1).clamp(max=input_ids.shape[1] - 1)[:, None])
    chosen = candidate & (scores <= threshold)
    action = torch.rand(input_ids.shape, generator=generator)
    replacement = random_ids[torch.randint(len(random_ids), input_ids.shape, generator=generator)]
    masked = torch.where(chosen & (action < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    masked = torch.where(chosen & (action >= 0.8) & (action < 0.9), replacement, masked)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    return masked, labels


# ---------------------------------------------------------------------- packing


def encode(tokenizer, texts: list[str], chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """All token ids (no special tokens) in one flat int32 array, and each text's length."""
    backend = type(tokenizer.backend_tokenizer).from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    run = getattr(backend, "encode_batch_fast", backend.encode_batch)
    ids, lengths = [], []
    for start in range(0, len(texts), chunk):
        encoded = [e.ids for e in run(texts[start:start + chunk], add_special_tokens=False)]
        lengths.append(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)))
        ids.append(np.fromiter(itertools.chain.from_iterable(encoded), dtype=np.int32,
                               count=int(lengths[-1].sum())))
    if not ids:
        return np.zeros(0, np.int32), np.zeros(0, np.int64)
    return np.concatenate(ids), np.concatenate(lengths)


def pack(ids: np.ndarray, lengths: np.ndarray, note_of: np.ndarray, max_length: int,
         tokenizer) -> dict:
    """Sentences (flat ids, lengths, note of each) packed as described in the module docstring:
    {"input_ids": int32 [sequences, max_length], "lengths": int32 [sequences]}."""
    room = max_length - 2
    starts, offsets, sizes, seps, fills = [], [], [], [], []
    seq, fill, last_note = 0, 0, None
    for length, note in zip(lengths.tolist(), note_of.tolist()):
        if length == 0:
            continue
        gap = 1 if fill and note != last_note else 0
        last_note = note
        if fill + gap + length > room and (length <= room or fill + gap >= room):
            fills.append(fill)
            seq, fill, gap = seq + 1, 0, 0
        if gap:
            seps.append(seq * max_length + 1 + fill)
            fill += 1
        while length:
            take = min(length, room - fill)
            starts.append(seq)
            offsets.append(1 + fill)
            sizes.append(take)
            fill, length = fill + take, length - take
            if length:
                fills.append(fill)
                seq, fill = seq + 1, 0
    if fill:
        fills.append(fill)
    n = len(fills)
    out = np.full((n, max_length), tokenizer.pad_token_id, dtype=np.int32)
    flat = out.reshape(-1)
    sizes_ = np.asarray(sizes, dtype=np.int64)
    before = np.cumsum(sizes_) - sizes_
    dest = np.asarray(starts, np.int64) * max_length + np.asarray(offsets, np.int64) - before
    flat[np.repeat(dest, sizes_) + np.arange(int(sizes_.sum()))] = ids[:int(sizes_.sum())]
    flat[np.asarray(seps, dtype=np.int64)] = tokenizer.sep_token_id
    ends = np.asarray(fills, dtype=np.int64) + 1
    out[:, 0] = tokenizer.cls_token_id
    out[np.arange(n), ends] = tokenizer.sep_token_id
    return {"input_ids": torch.from_numpy(out), "lengths": torch.from_numpy((ends + 1).astype(np.int32))}


def note_sentences(table: pa.Table, opts: MlmOptions, source: str) -> tuple[list[str], np.ndarray]:
    """Every sentence (or whole text where a note has no sentence list) and its note's row."""
    names = table.column_names
    text = table[opts.text_field].combine_chunks() if opts.text_field in names else None
    if opts.sentences_field in names:
        lists = table[opts.sentences_field].combine_chunks()
        if not pa.types.is_list(lists.type) and not pa.types.is_large_list(lists.type):
            raise DataError(f"{source}: field '{opts.sentences_field}' is {lists.type}, not a list "
                            "of sentences", hint="choose another field with --sentences-field")
        if text is not None and lists.null_count:
            whole = pa.ListArray.from_arrays(pa.array(np.arange(len(text) + 1, dtype=np.int32)),
                                             text.cast(pa.string()))
            lists = pc.if_else(pc.is_null(lists), whole, lists.cast(whole.type))
        counts = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
        flat = pc.list_flatten(lists)
    elif text is not None:
        counts, flat = np.ones(len(text), dtype=np.int64), text
    else:
        raise MissingFieldError(source, opts.text_field, names, "--text-field")
    texts = flat.fill_null("").to_pylist()
    return texts, np.repeat(np.arange(table.num_rows), counts.astype(np.int64))


# ---------------------------------------------------------------------- models and vocabularies


def load_init(path: str, max_length: int, seed: int = 0):
    """(model, tokenizer, names of weights the checkpoint lacked, initialised by seed) from a
    local BERT directory."""
    from transformers import AutoConfig, AutoTokenizer

    where = Path(path)
    if not (where / "config.json").is_file():
        raise UsageError(f"--init {path}: not a model directory (no config.json)",
                         hint="give a local directory saved by transformers; nothing is downloaded")
    config = AutoConfig.from_pretrained(where, local_files_only=True)
    if config.model_type != "bert":
        raise DataError(f"{path}: a '{config.model_type}' model; --init needs a BERT model")
    if max_length > config.max_position_embeddings:
        raise UsageError(f"--max-length {max_length}: {path} has only "
                         f"{config.max_position_embeddings} positions")
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, info = SparseHeadBertForMaskedLM.from_pretrained(
                where, local_files_only=True, use_safetensors=True, attn_implementation="sdpa",
                output_loading_info=True)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot load the model or its tokenizer ({type(err).__name__})",
                        hint="it needs model.safetensors (weights are never unpickled) and "
                             "tokenizer files (tokenizer.json or vocab.txt)") from None
    if not tokenizer.is_fast or len(tokenizer) > config.vocab_size:
        raise DataError(f"{path}: the tokenizer does not fit the model (a fast tokenizer with "
                        f"at most {config.vocab_size} tokens is needed)")
    tokenizer.model_max_length = max(min(tokenizer.model_max_length, 10**6), max_length)
    return model.float(), tokenizer, sorted(info.get("missing_keys", []))


def _new_model(opts: MlmOptions, vocab: int, pad_id: int, seed: int) -> SparseHeadBertForMaskedLM:
    from ehrkit.models.presets import bert_config

    rows = -(-vocab // 64) * 64
    config = bert_config(opts.preset or "tiny", rows, opts.max_length, pad_token_id=pad_id,
                         attn_implementation="sdpa")
    with torch.random.fork_rng(devices=[]):  # the same weights for a seed; global RNG untouched
        torch.manual_seed(seed)
        return SparseHeadBertForMaskedLM(config)


