"""`ehrkit finetune` and `ehrkit predict`: each task type learns a planted signal with a tiny
model built from config, predictions from the run equal `predict`'s and transformers' own
pipeline's, a timeline's score does not depend on its batch (left padding), the head-only
baseline leaves the encoder untouched, several seeds are summarised, and bad input fails with
the right exit code."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ehrkit.cli import run

WORDS = ["the", "patient", "was", "seen", "today", "and", "home", "with", "pain", "chest", "no",
         "acute", "distress", "plan", "follow", "up", "in", "clinic", "fever", "cough", "sepsis",
         "stroke", "asthma", "renal", "failure", "."]
SIGNAL = {"sepsis": 1, "stroke": 1}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A tiny BERT masked LM with a word-level vocabulary, as `ehrkit pretrain` saves one."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    directory = tmp_path_factory.mktemp("bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(directory)
    BertTokenizerFast.from_pretrained(directory).save_pretrained(directory)
    return directory


def _notes(n: int, seed: int = 0) -> list[dict]:
    """Notes whose label is whether they mention sepsis or stroke; splits by row."""
    rng = random.Random(seed)
    plain = [w for w in WORDS if w not in SIGNAL]
    rows = []
    for i in range(n):
        words = [rng.choice(plain) for _ in range(rng.randint(4, 30))]
        label = i % 2
        if label:
            words.insert(rng.randrange(len(words)), rng.choice(sorted(SIGNAL)))
        split = _split(i)
        rows.append({"hadm_id": 1000 + i // 2, "text": " ".join(words), "label": label,
                     "topic": ["a", "b", "c"][i % 3] if not label else "d", "split": split})
    return rows


def _split(i: int) -> str:
    """Both labels (i % 2) in every split: a fifth held out, a fifth tuning."""
    return "held_out" if i % 10 in (0, 3) else "tuning" if i % 10 in (1, 4) else "train"


def _write(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


FAST = ["--batch-size", "16", "--lr", "3e-3", "--eval-every", "20", "-q"]


def test_binary_text_learns_and_predict_matches_run_and_pipeline(bert_dir, tmp_path, capsys):
    notes = _write(_notes(300), tmp_path / "notes.jsonl")
    out = tmp_path / "run"
    assert run(["finetune", str(notes), "--init", str(bert_dir), "--label-field", "label",
                "--epochs", "4", "-o", str(out), *FAST]) == 0
    summary = _summary(capsys)
    assert summary["task"] == "binary" and summary["selected_by"] == "auroc"
    assert summary["test"]["split"] == "held_out" and summary["test"]["rows"] == 60
    assert summary["test"]["auroc"] > 0.9
    for name in ("config.json", "model.safetensors", "finetune.json", "metrics.jsonl",
                 "predictions.parquet", "ehrkit.json", "README.md", "tokenizer.json"):
        assert (out / name).exists(), name
    assert not (out / "best").exists()
    config = json.loads((out / "config.json").read_text())
    assert len(config["id2label"]) == 1 and config["problem_type"] == "multi_label_classification"

    # predict on the same rows gives the run's own predictions; ids and order pass through
    held = [r for r in _notes(300) if r["split"] == "held_out"]
    src = _write(held, tmp_path / "held.jsonl")
    assert run(["predict", str(src), "-m", str(out), "-o", str(tmp_path / "p.parquet"), "-q"]) == 0
    mine = pq.read_table(tmp_path / "p.parquet")
    theirs = pq.read_table(out / "predictions.parquet")
    assert "text" not in mine.column_names
    assert mine["hadm_id"].to_pylist() == [r["hadm_id"] for r in held]
    np.testing.assert_allclose(mine["score"].to_numpy(), theirs["score"].to_numpy(), atol=1e-6)
    assert mine["label"].to_pylist() == [r["label"] for r in held]
    meta = json.loads(mine.schema.metadata[b"ehrkit.prediction"])
    assert meta["task"] == "binary" and meta["positive"] == 1

    # transformers' own pipeline reads the directory and gives the same probabilities
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(out), device="cpu")
    got = [r[0]["score"] if isinstance(r, list) else r["score"]
           for r in classify([r["text"] for r in held[:5]], top_k=None)]
    np.testing.assert_allclose(got, mine["score"].to_numpy()[:5], atol=1e-5)

    # and evaluate reads the records
    assert run(["evaluate", str(tmp_path / "p.parquet"), "-o", str(tmp_path / "m.jsonl"), "-q"]) == 0
    metrics = {r["metric"]: r["value"] for r in map(json.loads, open(tmp_path / "m.jsonl"))}
    assert metrics["auroc"] == pytest.approx(summary["test"]["auroc"], abs=1e-9)


def test_multiclass_frozen_encoder_changes_only_the_head(bert_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    notes = _write(_notes(120), tmp_path / "notes.jsonl")
    out = tmp_path / "run"
    assert run(["finetune", str(notes), "--init", str(bert_dir), "--label-field", "topic",
                "--freeze-encoder", "--class-weights", "--max-steps", "10", "-o", str(out),
                *FAST]) == 0
    summary = _summary(capsys)
    assert summary["task"] == "multiclass" and summary["selected_by"] == "macro_f1"
    before, after = load_file(bert_dir / "model.safetensors"), load_file(out / "model.safetensors")
    encoder = [k for k in after if k.startswith("bert.encoder.") or k.startswith("bert.embeddings.")]
    assert encoder and all(torch.equal(before[k], after[k]) for k in encoder)
    spec = json.loads((out / "finetune.json").read_text())
    assert spec["targets"][0]["classes"] == ["a", "b", "c", "d"]
    scores = pq.read_table(out / "predictions.parquet")["score"].to_pylist()
    assert all(len(s) == 4 and abs(sum(s) - 1) < 1e-6 for s in scores)


def test_regression_scores_are_on_the_label_scale(bert_dir, tmp_path, capsys):
    rows = _notes(200)
    for r in rows:
        r["score_label"] = 100.0 + 20.0 * r["label"] + 0.5 * (r["hadm_id"] % 7)
    notes = _write(rows, tmp_path / "notes.jsonl")
    assert run(["finetune", str(notes), "--init", str(bert_dir), "--label-field", "score_label",
                "--task", "regression", "--epochs", "4", "-o", str(tmp_path / "run"), *FAST]) == 0
    summary = _summary(capsys)
    assert summary["selected_by"] == "pearson"
    scores = pq.read_table(tmp_path / "run" / "predictions.parquet")["score"].to_numpy()
    assert 95 < scores.mean() < 120  # the label's scale, not the standardised one
    assert summary["test"]["pearson"] > 0.5


def test_seeds_give_mean_and_sd(bert_dir, tmp_path, capsys):
    notes = _write(_notes(80), tmp_path / "notes.jsonl")
    out = tmp_path / "runs"
    assert run(["finetune", str(notes), "--init", str(bert_dir), "--label-field", "label",
                "--max-steps", "4", "--seeds", "1,2", "-o", str(out), *FAST]) == 0
    summary = _summary(capsys)
    assert summary["seeds"] == [1, 2]
    assert (out / "seed-1" / "model.safetensors").exists() and (out / "seed-2" / "finetune.json").exists()
    auroc = summary["test"]["auroc"]
    assert len(auroc["values"]) == 2 and auroc["mean"] == pytest.approx(np.mean(auroc["values"]))
    assert json.loads((out / "seeds.json").read_text())["format"] == "ehrkit.seeds"


# ----------------------------------------------------------------------------- timelines


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    from ehrkit.timeline.vocab import SPECIALS, Vocabulary, VocabSettings

    directory = tmp_path_factory.mktemp("llama")
    vocab = Vocabulary(list(SPECIALS) + [f"E{i}" for i in range(20)], {}, VocabSettings())
    vocab.save(directory / "vocab.json")
    pad = vocab.index["PAD"]
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                         max_position_embeddings=64, pad_token_id=pad)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def _timelines(llama_dir: Path, n: int) -> list[dict]:
    from ehrkit.timeline.vocab import Vocabulary

    index = Vocabulary.load(llama_dir / "vocab.json").index
    rng = random.Random(1)
    rows = []
    for i in range(n):
        label = i % 2
        events = [index[f"E{rng.randrange(1, 20)}"] for _ in range(rng.randint(3, 40))]
        if label:
            events[rng.randrange(len(events))] = index["E0"]
        else:
            events = [e if e != index["E0"] else index["E1"] for e in events]
        ids = [index["TL_START"], *events, index["TL_END"]]
        split = _split(i)
        rows.append({"hospitalization_id": str(i), "patient_id": str(i), "input_ids": ids,
                     "death": label, "split": split})
    return rows


def test_timeline_classifier_left_padding_does_not_depend_on_the_batch(llama_dir, tmp_path, capsys):
    rows = _timelines(llama_dir, 200)
    src = _write(rows, tmp_path / "tl.jsonl")
    out = tmp_path / "run"
    assert run(["finetune", str(src), "--init", str(llama_dir), "--label-field", "death",
                "--epochs", "5", "-o", str(out), *FAST]) == 0
    summary = _summary(capsys)
    assert summary["kind"] == "timeline" and summary["test"]["auroc"] > 0.9
    assert (out / "vocab.json").exists()
    # one row at a time and all rows together give the same scores
    held = [r for r in rows if r["split"] == "held_out"]
    src = _write(held, tmp_path / "held.jsonl")
    assert run(["predict", str(src), "-m", str(out), "-o", str(tmp_path / "one.parquet"),
                "--batch-size", "1", "-q"]) == 0
    assert run(["predict", str(src), "-m", str(out), "-o", str(tmp_path / "all.parquet"), "-q"]) == 0
    one = pq.read_table(tmp_path / "one.parquet")["score"].to_numpy()
    together = pq.read_table(tmp_path / "all.parquet")["score"].to_numpy()
    np.testing.assert_allclose(one, together, atol=1e-5)


def test_uniform_truncation_cuts_inside_each_timeline(llama_dir, tmp_path, capsys):
    from ehrkit.finetune.task import uniform_truncation

    lengths = np.array([1, 2, 10, 50])
    rows = np.arange(4)
    cut = uniform_truncation(lengths, rows, torch.Generator().manual_seed(0))
    assert cut[0] == 1 and cut[1] == 1
    assert np.all((cut[2:] >= 1) & (cut[2:] < lengths[2:]))
    # (it hides the planted token of this toy task, so only check that training runs with it)
    src = _write(_timelines(llama_dir, 40), tmp_path / "tl.jsonl")
    assert run(["finetune", str(src), "--init", str(llama_dir), "--label-field", "death", "--urt",
                "--max-steps", "3", "-o", str(tmp_path / "run"), *FAST]) == 0
    assert _summary(capsys)["steps"] == 3
    assert run(["finetune", str(src), "--label-field", "death", "--urt", "-o",
                str(tmp_path / "x"), "-q"]) == 2  # URT is for timeline models only


# ----------------------------------------------------------------------------- series (GRU)


def test_new_gru_on_series(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        label = i % 2
        values = rng.normal(size=(6, 3)).astype(np.float32)
        values[:, 0] += 2.0 * label
        split = _split(i)
        rows.append({"stay_id": i, "values": values.tolist(), "mask": np.ones((6, 3)).tolist(),
                     "length": 6, "mortality": label, "split": split})
    src = tmp_path / "series.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    out = tmp_path / "gru"
    assert run(["finetune", str(src), "--label-field", "mortality", "--hidden", "16",
                "--layers", "1", "--epochs", "5", "-o", str(out), *FAST]) == 0
    summary = _summary(capsys)
    assert summary["kind"] == "series" and summary["test"]["auroc"] > 0.9
    assert json.loads((out / "config.json").read_text())["model_type"] == "ehrkit-gru"
    assert run(["predict", str(src), "-m", str(out), "-o", str(tmp_path / "p.jsonl"), "-q"]) == 0
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 120


# ----------------------------------------------------------------------------- NER


def _conll(path: Path, n: int, seed: int) -> Path:
    """Sentences where 'sepsis' and 'renal failure' are Disease entities."""
    rng = random.Random(seed)
    plain = [w for w in WORDS if w not in ("sepsis", "renal", "failure")]
    lines = []
    for _ in range(n):
        words = [(rng.choice(plain), "O") for _ in range(rng.randint(3, 12))]
        at = rng.randrange(len(words))
        entity = [("sepsis", "B-Disease")] if rng.random() < 0.5 else \
            [("renal", "B-Disease"), ("failure", "I-Disease")]
        words[at:at] = entity
        lines += [f"{w}\t{t}" for w, t in words] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ner_from_conll_files_learns_entities(bert_dir, tmp_path, capsys):
    train = _conll(tmp_path / "train.tsv", 150, 1)
    dev = _conll(tmp_path / "devel.tsv", 30, 2)
    test = _conll(tmp_path / "test.tsv", 30, 3)
    out = tmp_path / "ner"
    assert run(["finetune", str(train), str(dev), str(test), "--task", "ner", "--init",
                str(bert_dir), "--scheme", "bilou", "--max-length", "12", "--stride", "4",
                "--epochs", "6", "-o", str(out), *FAST]) == 0
    summary = _summary(capsys)
    assert summary["task"] == "ner" and summary["selected_by"] == "entity_f1"
    assert summary["test"]["split"] == "held_out" and summary["test"]["rows"] == 30
    assert summary["test"]["entity_f1"] > 0.9
    spec = json.loads((out / "finetune.json").read_text())
    assert spec["tag_names"] == ["O", "B-Disease", "I-Disease", "L-Disease", "U-Disease"]
    table = pq.read_table(out / "predictions.parquet")
    assert {"tokens", "label", "prediction"} <= set(table.column_names)
    assert all(len(t) == len(p) for t, p in zip(table["tokens"].to_pylist(),
                                                table["prediction"].to_pylist()))
    # evaluate reads the tag records (sequence task)
    assert run(["evaluate", str(out / "predictions.parquet"), "-o", str(tmp_path / "m.jsonl"),
                "-q"]) == 0
    metrics = {r["metric"]: r["value"] for r in map(json.loads, open(tmp_path / "m.jsonl"))}
    assert metrics["entity_f1"] == pytest.approx(summary["test"]["entity_f1"])


def test_ner_predict_on_span_records(bert_dir, tmp_path, capsys):
    train = _conll(tmp_path / "train.tsv", 120, 1)
    out = tmp_path / "ner"
    assert run(["finetune", str(train), "--task", "ner", "--init", str(bert_dir), "--epochs", "5",
                "-o", str(out), *FAST]) == 0
    capsys.readouterr()
    text = "the patient was seen with sepsis today and no renal failure"
    spans = [{"start": text.index("sepsis"), "end": text.index("sepsis") + 6, "label": "Disease"}]
    src = _write([{"note_id": 7, "text": text, "spans": spans}], tmp_path / "spans.jsonl")
    assert run(["predict", str(src), "-m", str(out), "-o", str(tmp_path / "p.jsonl"), "-q"]) == 0
    record = json.loads((tmp_path / "p.jsonl").read_text())
    assert record["note_id"] == 7 and "text" not in record
    assert record["label"][5] == "B-Disease" and len(record["prediction"]) == len(text.split())


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_field_and_exit_codes(bert_dir, tmp_path, capsys):
    notes = _write(_notes(40), tmp_path / "notes.jsonl")
    assert run(["finetune", str(notes), "--init", str(bert_dir), "--label-field", "nope",
                "-o", str(tmp_path / "a"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "'nope'" in err and "sepsis" not in err
    assert run(["finetune", str(notes), "--init", str(bert_dir), "-o", str(tmp_path / "b"), "-q"]) == 2
    assert run(["finetune", str(notes), "--task", "ner", "-o", str(tmp_path / "c"), "-q"]) == 2
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("")
    assert run(["finetune", str(notes), "--init", str(bert_dir), "--label-field", "label",
                "-o", str(tmp_path / "d"), "-q"]) == 2
    assert run(["predict", str(notes), "-m", str(bert_dir), "-q"]) == 1  # not fine-tuned
    assert "finetune.json" in capsys.readouterr().err
