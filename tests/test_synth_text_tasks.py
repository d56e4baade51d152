"""`ehrkit synth ner` and `ehrkit synth pairs`: deterministic, well-formed, learnable."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.cli import run
from ehrkit.synth import text_tasks
from ehrkit.synth.commands import ner_format

NCBI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ner" / "ncbi-disease"


def _table(batches) -> pa.Table:
    return pa.Table.from_batches(list(batches))


def _read_conll(text: str) -> list[list[tuple[str, str]]]:
    """Sentences of (token, tag) from CoNLL/IOB text, as an NCBI-disease reader sees them."""
    sentences, current = [], []
    for line in text.splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
            current = []
            continue
        token, tag = line.split("\t")
        current.append((token, tag))
    return sentences + ([current] if current else [])


# ----------------------------------------------------------------------------- NER

def test_ner_is_deterministic_by_seed():
    a, b = _table(text_tasks.ner_batches(200, 1)), _table(text_tasks.ner_batches(200, 1))
    assert a.equals(b) and a.schema.equals(text_tasks.NER_SCHEMA)
    assert not a.equals(_table(text_tasks.ner_batches(200, 2)))
    assert text_tasks.ner_record(1, 150) == a.slice(150, 1).to_pylist()[0]


def test_ner_tags_are_valid_bio_and_spans_match_text():
    records = _table(text_tasks.ner_batches(500, 0)).to_pylist()
    seen = Counter()
    for r in records:
        assert len(r["tokens"]) == len(r["tags"])
        previous = "O"
        for tag in r["tags"]:
            seen[tag] += 1
            if tag.startswith("I-"):
                assert previous[2:] == tag[2:], r["tags"]
            previous = tag
        entities = []
        for i, tag in enumerate(r["tags"]):
            if tag.startswith("B-"):
                entities.append([tag[2:], i, i + 1])
            elif tag.startswith("I-"):
                entities[-1][2] = i + 1
        assert len(entities) == len(r["spans"])
        for (label, start, end), span in zip(entities, r["spans"]):
            assert span["label"] == label
            assert r["text"][span["start"]:span["end"]] == " ".join(r["tokens"][start:end])
    for label in text_tasks.NER_LABELS:
        assert seen[f"B-{label}"] > 0 and seen[f"I-{label}"] > 0, label
    assert any(set(r["tags"]) == {"O"} for r in records)


def test_ner_is_learnable_from_the_training_half():
    records = _table(text_tasks.ner_batches(1000, 0)).to_pylist()
    votes: dict[str, Counter] = defaultdict(Counter)
    for r in records[:500]:
        for token, tag in zip(r["tokens"], r["tags"]):
            votes[token][tag] += 1
    gold = [tag for r in records[500:] for tag in r["tags"]]
    guess = [votes[t].most_common(1)[0][0] if t in votes else "O"
             for r in records[500:] for t in r["tokens"]]
    entity = [g != "O" for g in gold]
    accuracy = np.mean([g == p for g, p, e in zip(gold, guess, entity) if e])
    assert accuracy > 0.8  # even a per-token lookup learns most entity tags


def test_ner_format_is_inferred_from_the_extension():
    assert ner_format("train.conll", None) == "conll"
    assert ner_format("TRAIN.TXT", None) == "conll"
    assert ner_format("train.jsonl", None) is None
    assert ner_format("-", "conll") == "conll"
    assert ner_format("train.conll", "jsonl") == "jsonl"


def test_cli_conll_file_is_ncbi_layout_and_atomic(tmp_path, capsys):
    out = tmp_path / "train.conll"
    assert run(["synth", "ner", "-n", "40", "--seed", "3", "-o", str(out)]) == 0
    assert "synth ner: 40 sentences (conll)" in capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n\n")
    sentences = _read_conll(text)
    records = _table(text_tasks.ner_batches(40, 3)).to_pylist()
    assert sentences == [list(zip(r["tokens"], r["tags"])) for r in records]
    assert [p.name for p in tmp_path.iterdir()] == ["train.conll"]


@pytest.mark.skipif(not NCBI.is_dir(), reason="NCBI-disease data absent (../shared/data is not "
                    "part of a fresh clone)")
def test_conll_reads_like_ncbi_disease(capsys):
    ncbi = _read_conll((NCBI / "devel.tsv").read_text(encoding="utf-8"))
    assert ncbi and all(re.fullmatch(r"[BI]-Disease|O", tag) for s in ncbi for _, tag in s)
    assert run(["synth", "ner", "-n", "5", "--to", "conll"]) == 0
    ours = _read_conll(capsys.readouterr().out)
    assert len(ours) == 5
    assert all(re.fullmatch(r"[BI]-(Disease|Drug|Dose)|O", tag) for s in ours for _, tag in s)


def test_conll_pipes_to_standard_tools(shell):
    done = shell("ehrkit synth ner -n 200 --to conll -q | cut -f2 | grep -c '^B-Dose$'")
    assert done.returncode == 0, done.stderr.decode()
    assert int(done.stdout) > 0 and done.stderr == b""


def test_cli_ner_jsonl_and_parquet(tmp_path, capsys):
    assert run(["synth", "ner", "-n", "4", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == _table(text_tasks.ner_batches(4, 1)).to_pylist()
    out = tmp_path / "ner.parquet"
    assert run(["synth", "ner", "-n", "4", "--seed", "1", "-o", str(out)]) == 0
    assert pq.read_table(out).equals(_table(text_tasks.ner_batches(4, 1)))


# ----------------------------------------------------------------------------- pairs

def test_pairs_are_deterministic_by_seed():
    a, b = _table(text_tasks.pair_batches(300, 1)), _table(text_tasks.pair_batches(300, 1))
    assert a.equals(b) and a.schema.equals(text_tasks.PAIR_SCHEMA)
    assert not a.equals(_table(text_tasks.pair_batches(300, 2)))


def test_pair_labels_and_ranges():
    records = _table(text_tasks.pair_batches(1000, 0)).to_pylist()
    similarity = np.array([r["similarity"] for r in records])
    assert similarity.min() >= 0 and similarity.max() <= 5
    counts = Counter(r["entailment"] for r in records)
    assert set(counts) == set(text_tasks.ENTAILMENT_LABELS)
    assert min(counts.values()) / len(records) > 0.1
    assert all(r["sentence_a"] and r["sentence_b"] and r["sentence_a"] != r["sentence_b"]
               for r in records)
    by_label = {k: similarity[[r["entailment"] == k for r in records]].mean() for k in counts}
    assert by_label["entailment"] > by_label["contradiction"] > by_label["neutral"]


def _bag_of_words(records: list[dict]) -> np.ndarray:
    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z]+", text.lower()))

    pairs = [(words(r["sentence_a"]), words(r["sentence_b"])) for r in records]
    vocab = {w: i for i, w in enumerate(sorted(set().union(*(a | b for a, b in pairs))))}
    x = np.zeros((len(pairs), 3 * len(vocab) + 1))
    for row, (a, b) in enumerate(pairs):
        for offset, group in enumerate((a, b, a & b)):
            x[row, [offset * len(vocab) + vocab[w] for w in group]] = 1
        x[row, -1] = 1
    return x


def test_pair_labels_are_learnable_by_a_linear_probe():
    records = _table(text_tasks.pair_batches(1500, 0)).to_pylist()
    x, train = _bag_of_words(records), slice(0, 1000)
    ridge = np.linalg.solve(x[train].T @ x[train] + np.eye(x.shape[1]), x[train].T)
    similarity = np.array([r["similarity"] for r in records])
    predicted = x[1000:] @ (ridge @ similarity[train])
    assert np.corrcoef(predicted, similarity[1000:])[0, 1] > 0.8
    labels = np.array([r["entailment"] for r in records])
    scores = np.stack([x[1000:] @ (ridge @ (labels[train] == k)) for k in
                       text_tasks.ENTAILMENT_LABELS], axis=1)
    predicted_labels = np.array(text_tasks.ENTAILMENT_LABELS)[scores.argmax(axis=1)]
    assert np.mean(predicted_labels == labels[1000:]) > 0.8


def test_cli_pairs_parquet_is_atomic(tmp_path, capsys):
    out = tmp_path / "pairs.parquet"
    assert run(["synth", "pairs", "-n", "25", "--seed", "5", "-o", str(out)]) == 0
    assert "synth pairs: 25 sentence pairs" in capsys.readouterr().err
    assert pq.read_table(out).equals(_table(text_tasks.pair_batches(25, 5)))
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.parquet"]
