"""`notes chunk`: ClinicalBERT's word chunks against a transcription of its source loop (318-word
boundary, remainders of 10 and 11 words, short texts, Python's whitespace), parent fields and
chunk indices, token windows (within the model's length when re-tokenized with [CLS]/[SEP],
stride overlap, substrings of the note, words cut only when longer than a window), formats,
stdin, and errors that name fields without quoting text."""

from __future__ import annotations

import doctest
import io
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ehrkit.cli import run
from ehrkit.notes import chunk as chunk_module
from ehrkit.notes.chunk import (TokenChunker, WordChunker, chunk_batch, load_tokenizer,
                                make_chunker, word_chunks)
from ehrkit.synth.notes import note_batches

MARKER = "ZEBRA-MARKER-7731"
WORDS = ["the", "patient", "was", "seen", "today", "and", "discharged", "home", "with", "pain",
         "chest", "no", "acute", "distress", "plan", "follow", "up", "in", "clinic", "."]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\xa0", "\u3000", "\x1c", "\u2028", " \x85 "]


def source_chunks(text: str) -> list[str]:
    """ClinicalBERT's preprocess.py chunking loop, transcribed (methods.md 1.4)."""
    want = []
    x = text.split()
    n = int(len(x) / 318)
    for j in range(n):
        want.append(" ".join(x[j * 318:(j + 1) * 318]))
    if len(x) % 318 > 10:
        want.append(" ".join(x[-(len(x) % 318):]))
    return want


def text_of(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return rng.choice(["", " ", "\n"]) + "".join(f"w{i}{rng.choice(SPACES)}" for i in range(n))


# ----------------------------------------------------------------------------- words


@pytest.mark.parametrize("n, sizes, dropped", [
    (0, [], False), (10, [], True), (11, [11], False), (317, [317], False), (318, [318], False),
    (328, [318], True), (329, [318, 11], False), (636, [318, 318], False),
    (646, [318, 318], True), (647, [318, 318, 11], False),
])
def test_word_chunks_at_the_boundaries(n, sizes, dropped):
    text = text_of(n, seed=n)
    chunks, was_dropped = word_chunks(text)
    assert [len(c.split(" ")) for c in chunks] == sizes and was_dropped is dropped
    assert chunks == source_chunks(text)
    words = text.split()
    assert " ".join(chunks).split() == words[:sum(sizes)]


def test_word_chunks_equal_the_source_on_many_texts():
    rng = random.Random(4)
    texts = [text_of(rng.randrange(0, 1000), seed=i) for i in range(300)]
    pieces = WordChunker().split(texts)
    want = [(row, c) for row, text in enumerate(texts) for c in source_chunks(text)]
    assert list(zip(pieces.parents, pieces.texts)) == want


def test_other_sizes_and_remainders():
    text = " ".join(f"w{i}" for i in range(23))
    assert word_chunks(text, words=10, min_remainder=3) == (
        [" ".join(f"w{i}" for i in range(10)), " ".join(f"w{i}" for i in range(10, 20)),
         "w20 w21 w22"], False)
    assert word_chunks(text, words=10, min_remainder=4)[1] is True
    assert word_chunks(text, words=5, min_remainder=11)[0][-1] == "w15 w16 w17 w18 w19"


def test_null_and_empty_texts_give_no_chunk():
    pieces = WordChunker().split([None, "", " \n\t", "a " * 5, "b " * 20])
    assert pieces.parents == [4] and pieces.texts == [("b " * 20).strip()]
    stats = pieces.stats
    assert (stats.notes, stats.chunks, stats.empty, stats.no_chunk, stats.dropped) == (5, 1, 3, 4, 1)


def test_doctests():
    assert doctest.testmod(chunk_module).failed == 0


# ----------------------------------------------------------------------------- records


def test_records_keep_parent_fields_and_count_chunks():
    texts = [text_of(700, 1), None, text_of(20, 2), text_of(5, 3)]
    batch = pa.record_batch({"note_id": [10, 11, 12, 13], "label": [1, 0, 1, 0],
                             "text": texts, "split": ["train", "train", "held_out", "tuning"]})
    table, stats = chunk_batch(batch, WordChunker())
    assert table.column_names == ["note_id", "label", "text", "split", "chunk_index", "chunk_count"]
    assert table.schema.field("chunk_index").type == pa.int32()
    assert table.schema.field("chunk_count").type == pa.int32()
    rows = table.to_pylist()
    assert [(r["note_id"], r["label"], r["split"], r["chunk_index"], r["chunk_count"]) for r in rows] == [
        (10, 1, "train", 0, 3), (10, 1, "train", 1, 3), (10, 1, "train", 2, 3),
        (12, 1, "held_out", 0, 1)]
    assert [r["text"] for r in rows] == source_chunks(texts[0]) + source_chunks(texts[2])
    assert (stats.notes, stats.chunks, stats.no_chunk, stats.dropped) == (4, 4, 2, 1)


def test_sentences_are_joined_without_text_and_dropped_with_it():
    sentences = [["first sentence here .", "second one"], None]
    batch = pa.record_batch({"id": [1, 2], "sentences": sentences})
    table, _ = chunk_batch(batch, WordChunker(words=3, min_remainder=1))
    assert table.column_names == ["id", "text", "chunk_index", "chunk_count"]
    assert table["text"].to_pylist() == ["first sentence here", ". second one"]
    both = pa.record_batch({"text": ["a b c d"], "sentences": [["a b", "c d"]], "chunk_index": [7]})
    table, _ = chunk_batch(both, WordChunker(words=2, min_remainder=1))
    assert table.column_names == ["text", "chunk_index", "chunk_count"]
    assert table.to_pylist() == [{"text": "a b", "chunk_index": 0, "chunk_count": 2},
                                 {"text": "c d", "chunk_index": 1, "chunk_count": 2}]


# ----------------------------------------------------------------------------- tokens


@pytest.fixture(scope="module")
def word_dir(tmp_path_factory) -> Path:
    """A BERT tokenizer where each of WORDS is one token and other words are spelt in letters."""
    from transformers import BertTokenizerFast

    directory = tmp_path_factory.mktemp("words-tokenizer")
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + list(letters) + \
        [f"##{c}" for c in letters]
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizerFast.from_pretrained(directory).save_pretrained(directory)
    (directory / "config.json").write_text(json.dumps({"model_type": "bert",
                                                       "max_position_embeddings": 64}))
    return directory


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """What `ehrkit pretrain --from-scratch` leaves for a tokenizer: tokenizer files and a
    config.json (no weights needed to chunk)."""
    from ehrkit.models.presets import bert_config
    from ehrkit.train.wordpiece import train_vocabulary

    directory = tmp_path_factory.mktemp("mlm-run")
    texts = [t for b in note_batches(60, seed=3) for t in b.column("text").to_pylist()]
    tokenizer = train_vocabulary(texts, 400, 128)
    tokenizer.save_pretrained(directory)
    bert_config("tiny", len(tokenizer), 128).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def synth_texts() -> list[str]:
    return [t for b in note_batches(80, seed=5) for t in b.column("text").to_pylist()]


@pytest.mark.parametrize("max_tokens, stride", [(512, 64), (32, 8), (12, 0), (6, 3)])
def test_token_chunks_fit_and_are_substrings(run_dir, synth_texts, max_tokens, stride):
    chunker = make_chunker(tokenizer=str(run_dir), max_tokens=max_tokens, stride=stride)
    tokenizer, _ = load_tokenizer(run_dir)
    pieces = chunker.split(synth_texts)
    assert pieces.stats.chunks == len(pieces.texts) > 0 and pieces.stats.no_chunk == 0
    lengths = [len(e.ids) for e in tokenizer.encode_batch(pieces.texts)]
    tokens = tokenizer.encode_batch(pieces.texts)
    assert max(lengths) <= max_tokens
    assert all(t.tokens[0] == "[CLS]" and t.tokens[-1] == "[SEP]" for t in tokens)
    assert all(c in synth_texts[row] and c == c.strip() for row, c in zip(pieces.parents, pieces.texts))


def test_windows_cover_every_token_in_order(run_dir, synth_texts):
    chunker = make_chunker(tokenizer=str(run_dir), max_tokens=24, stride=6)
    tokenizer, _ = load_tokenizer(run_dir)
    for text in synth_texts[:40]:
        spans = chunker.windows(tokenizer.encode(text, add_special_tokens=False), text,
                                chunk_module.ChunkStats())
        assert spans[0][0] == len(text) - len(text.lstrip())
        assert spans[-1][1] == len(text.rstrip())
        for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
            assert s0 < s1 <= e0 < e1 or (s1 > e0 and not text[e0:s1].strip())


def test_stride_overlaps_by_exactly_stride_one_token_words(word_dir):
    words = [WORDS[i % len(WORDS)] for i in range(100)]
    chunker = make_chunker(tokenizer=str(word_dir), max_tokens=12, stride=3)
    pieces = chunker.split([" ".join(words)])
    want, start = [], 0
    while True:
        want.append(" ".join(words[start:start + 10]))
        if start + 10 >= len(words):
            break
        start += 7
    assert pieces.texts == want


def test_windows_snap_to_words_and_cut_only_words_longer_than_a_window(word_dir):
    tokenizer, _ = load_tokenizer(word_dir)
    chunker = make_chunker(tokenizer=str(word_dir), max_tokens=8, stride=2)  # windows of 6
    text = "the patient abcd was seen today abcdefghijklmnop home"
    pieces = chunker.split([text])
    assert pieces.texts == ["the patient abcd", "abcd was seen", "was seen today abc", "bcdefg",
                            "fghijk", "jklmno", "nop home"]
    assert pieces.stats.cut_words == 5  # only windows in the 16-letter word are cut inside it
    assert all(len(tokenizer.encode(c).ids) <= 8 for c in pieces.texts)
    assert pieces.texts[-1].endswith("home") and all(c in text for c in pieces.texts)


def test_token_records_and_empty_texts(word_dir):
    batch = pa.record_batch({"hadm_id": [1, 2, 3], "text": [" ".join(WORDS * 2), None, "  "]})
    table, stats = chunk_batch(batch, make_chunker(tokenizer=str(word_dir), max_tokens=22, stride=0))
    assert table["hadm_id"].to_pylist() == [1, 1] and table["chunk_index"].to_pylist() == [0, 1]
    assert table["chunk_count"].to_pylist() == [2, 2]
    assert " ".join(table["text"].to_pylist()) == " ".join(WORDS * 2)
    assert (stats.notes, stats.empty, stats.no_chunk) == (3, 2, 2)


def test_an_old_bert_directory_without_tokenizer_json_loads(word_dir, tmp_path):
    for name in ("vocab.txt", "config.json"):
        (tmp_path / name).write_text((word_dir / name).read_text())
    chunker = make_chunker(tokenizer=str(tmp_path), max_tokens=5, stride=0)
    assert isinstance(chunker, TokenChunker) and chunker.window == 3
    assert chunker.split(["The patient was seen today"]).texts == ["The patient was", "seen today"]


# ----------------------------------------------------------------------------- CLI


def _notes_file(path: Path) -> Path:
    records = [{"hadm_id": 1, "Label": 1, "text": text_of(400, 1)},
               {"hadm_id": 2, "Label": 0, "text": f"{MARKER} " * 30},
               {"hadm_id": 3, "Label": 0, "text": None}]
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("src, out", [("n.jsonl", "c.parquet"), ("n.parquet", "c.jsonl")])
def test_cli_formats_and_summary(tmp_path, capsys, src, out):
    source = _notes_file(tmp_path / src)
    assert run(["notes", "chunk", str(source), "-o", str(tmp_path / out), "--id-field", "hadm_id"]) == 0
    if out.endswith(".parquet"):
        rows = pq.read_table(tmp_path / out).to_pylist()
    else:
        rows = [json.loads(line) for line in (tmp_path / out).read_text().splitlines()]
    assert [(r["hadm_id"], r["Label"], r["chunk_index"], r["chunk_count"]) for r in rows] == [
        (1, 1, 0, 2), (1, 1, 1, 2), (2, 0, 0, 1)]
    assert rows[1]["text"] == source_chunks(text_of(400, 1))[1]
    err = capsys.readouterr().err
    assert "notes chunk: 3 notes -> 3 chunks; 1 notes without a chunk (1 empty or null); " \
           "0 short remainders dropped" in err and MARKER not in err


def test_cli_tokens_stdin_to_stdout(word_dir, monkeypatch, capsys):
    data = "".join(json.dumps({"id": i, "text": " ".join(WORDS[i:])}) + "\n" for i in range(3))
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BufferedReader(io.BytesIO(data.encode()))))
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(buffer=out, flush=lambda: None,
                                                       isatty=lambda: False))
    assert run(["notes", "chunk", "--tokenizer", str(word_dir), "--max-tokens", "10",
                "--stride", "2"]) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["id"], r["chunk_index"], r["chunk_count"]) for r in rows] == [
        (0, 0, 3), (0, 1, 3), (0, 2, 3), (1, 0, 3), (1, 1, 3), (1, 2, 3), (2, 0, 3), (2, 1, 3),
        (2, 2, 3)]
    assert rows[0]["text"] == " ".join(WORDS[:8]) and rows[1]["text"] == " ".join(WORDS[6:14])
    assert "notes chunk: 3 notes -> 9 chunks" in capsys.readouterr().err


def test_a_real_pipe(shell, tmp_path):
    done = shell("ehrkit synth notes -n 40 --seed 2 -q | ehrkit notes chunk --words 40 "
                 "--to parquet > c.parquet")
    assert done.returncode == 0, done.stderr.decode()
    table = pq.read_table(tmp_path / "c.parquet")
    assert table.num_rows > 40 and "hadm_id" in table.column_names
    assert b"notes chunk: 40 notes -> " in done.stderr


def test_missing_text_field_names_it_without_quoting_text(tmp_path, capsys):
    source = _notes_file(tmp_path / "n.jsonl")
    assert run(["notes", "chunk", str(source), "--text-field", "body",
                "-o", str(tmp_path / "x.parquet")]) == 1
    err = capsys.readouterr().err
    assert "n.jsonl: field 'body' not found; fields present: hadm_id, Label, text" in err
    assert "--text-field" in err and MARKER not in err and not (tmp_path / "x.parquet").exists()
    assert run(["notes", "chunk", str(source), "--id-field", "note_id"]) == 1
    err = capsys.readouterr().err
    assert "field 'note_id' not found" in err and "--id-field" in err and MARKER not in err
    assert run(["notes", "chunk", str(source), "--text-field", "hadm_id"]) == 1
    err = capsys.readouterr().err
    assert "n.jsonl: field 'hadm_id' is int64, not text" in err and MARKER not in err


@pytest.mark.parametrize("args, message", [
    (["--max-tokens", "64"], "--max-tokens and --stride go with --tokenizer"),
    (["--stride", "8"], "--max-tokens and --stride go with --tokenizer"),
    (["--tokenizer", "{dir}", "--words", "100"], "--words and --min-remainder go with word chunks"),
    (["--tokenizer", "{dir}", "--max-tokens", "65"], "--max-tokens 65: the model in"),
    (["--tokenizer", "{dir}", "--max-tokens", "10", "--stride", "8"], "--stride 8: use 0 to 7"),
    (["--tokenizer", "{dir}", "--max-tokens", "2"], "--max-tokens 2: leaves no room"),
    (["--words", "0"], "Invalid value for '--words'"),
])
def test_usage_errors(word_dir, tmp_path, capsys, args, message):
    source = _notes_file(tmp_path / "n.jsonl")
    args = [a.replace("{dir}", str(word_dir)) for a in args]
    assert run(["notes", "chunk", str(source), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_missing_tokenizer_directory_is_a_data_error(tmp_path, capsys):
    source = _notes_file(tmp_path / "n.jsonl")
    assert run(["notes", "chunk", str(source), "--tokenizer", str(tmp_path / "nope")]) == 1
    assert "no such tokenizer directory" in capsys.readouterr().err


def test_no_input_records_give_an_empty_parquet_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    assert run(["notes", "chunk", str(tmp_path / "empty.jsonl"), "-o", str(tmp_path / "c.parquet"),
                "-q"]) == 0
    table = pq.read_table(tmp_path / "c.parquet")
    assert table.num_rows == 0 and table.column_names == ["text", "chunk_index", "chunk_count"]
