"""NER data (ehrkit/finetune/ner.py): CoNLL reading and its errors, span alignment, tag schemes,
first-sub-token encoding with a tiny WordPiece tokenizer, windows with a stride, and merging
window outputs back to words."""

from __future__ import annotations

import gzip
import string
from pathlib import Path

import numpy as np
import pytest

from ehrkit.errors import DataError, UsageError
from ehrkit.finetune import ner

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WORDS = ["the", "patient", "has", "chest", "pain", "and", "no", "fever", "."]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import BertTokenizerFast

    letters = list(string.ascii_lowercase)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + letters
    vocab += [f"##{c}" for c in letters]
    directory = tmp_path_factory.mktemp("wordpiece")
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    return BertTokenizerFast.from_pretrained(directory)


# ----------------------------------------------------------------------------- CoNLL


CONLL = ("-DOCSTART- -X- O O\n\nThe\tDT\tO\nchest\tNN\tB-Problem\npain\tNN\tI-Problem\n\n\n"
         "No O\r\nfever B-Problem\r\n\n-DOCSTART-\nfine\tO\n")


@pytest.mark.parametrize("packed", [False, True])
def test_read_conll(tmp_path, packed):
    path = tmp_path / ("a.conll.gz" if packed else "a.conll")
    path.write_bytes(gzip.compress(CONLL.encode()) if packed else CONLL.encode())
    table = ner.read_conll(str(path))
    assert table.column_names == ["id", "tokens", "tags"]
    assert table.to_pydict() == {
        "id": [0, 1, 2],
        "tokens": [["The", "chest", "pain"], ["No", "fever"], ["fine"]],
        "tags": [["O", "B-Problem", "I-Problem"], ["O", "B-Problem"], ["O"]],
    }


@pytest.mark.parametrize("bad, message", [("secretword", "line 3: one column"),
                                          ("secretword\tsecretword", "line 3: the last column")])
def test_read_conll_errors_name_the_line_not_the_token(tmp_path, bad, message):
    path = tmp_path / "bad.tsv"
    path.write_text(f"a\tO\n\n{bad}\nb\tO\n")
    with pytest.raises(DataError) as err:
        ner.read_conll(str(path))
    assert message in err.value.message and str(path) in err.value.message
    assert "secretword" not in err.value.message


def test_read_conll_ncbi_disease():
    path = DATA / "ner" / "ncbi-disease" / "train.tsv"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data directory is not mounted)")
    table = ner.read_conll(str(path))
    assert table.num_rows > 5000
    tags = table["tags"].to_pylist()
    assert set().union(*map(set, tags)) == {"O", "B-Disease", "I-Disease"}
    assert ner.label_list(tags, "bio") == ["O", "B-Disease", "I-Disease"]
    assert all(len(a) == len(b) for a, b in zip(table["tokens"].to_pylist(), tags))


# ----------------------------------------------------------------------------- schemes


BIO = ["B-A", "I-A", "O", "B-B", "B-B", "I-B", "I-B", "O", "B-A"]
BILOU = ["B-A", "L-A", "O", "U-B", "B-B", "I-B", "L-B", "O", "U-A"]


def test_bio_bilou_round_trip():
    assert ner.to_scheme(BIO, "bilou") == BILOU
    assert ner.to_scheme(BILOU, "bio") == BIO
    assert ner.to_scheme(ner.to_scheme(BIO, "bilou"), "bio") == BIO
    assert ner.to_scheme(BIO, "bio") == BIO
    assert ner.to_scheme(["S-A", "B-B", "E-B"], "bilou") == ["U-A", "B-B", "L-B"]  # IOBES


def test_iob1_and_invalid_predictions_are_repaired():
    assert ner.to_scheme(["I-A", "I-A", "B-A", "O", "I-B"], "bio") == ["B-A", "I-A", "B-A", "O", "B-B"]
    assert ner.repair(["O", "I-A", "I-A", "B-B", "I-A"]) == ["O", "B-A", "I-A", "B-B", "B-A"]
    assert ner.repair(["L-A", "O", "I-A", "L-A", "B-A", "U-B", "I-B"]) == \
        ["U-A", "O", "B-A", "L-A", "U-A", "U-B", "U-B"]
    assert ner.repair(["B-A", "I-A"], "bilou") == ["B-A", "L-A"]
    assert ner.entities(["B-A", "I-A", "O", "U-B"]) == [("A", 0, 2), ("B", 3, 4)]


def test_label_list():
    tags = [["O", "B-Drug"], ["I-Problem", "O"], []]
    assert ner.label_list(tags, "bio") == ["O", "B-Drug", "I-Drug", "B-Problem", "I-Problem"]
    assert ner.label_list(tags, "bilou")[:5] == ["O", "B-Drug", "I-Drug", "L-Drug", "U-Drug"]
    with pytest.raises(UsageError):
        ner.label_list(tags, "iobes")


# ----------------------------------------------------------------------------- spans


def test_spans_to_words_misaligned_and_overlapping():
    text = "Pt has chest-pain, HbA1c 9.1%"
    #       0123456789012345678901234567890
    spans = [
        {"start": 7, "end": 17, "label": "Problem"},  # chest-pain: three words
        {"start": 9, "end": 12, "label": "Body"},  # inside "chest": overlaps, dropped
        {"start": 21, "end": 24, "label": "Test"},  # "A1c" inside "HbA1c": covers the word
        {"start": 25, "end": 26, "label": "Value"},  # "9"
        {"start": 25, "end": 28, "label": "Value"},  # "9.1", longer at the same start: kept
        {"start": 18, "end": 19, "label": "Gap"},  # only a space: covers no word, dropped
    ]
    words, offsets, tags, dropped = ner.spans_to_words(text, spans)
    assert words == ["Pt", "has", "chest", "-", "pain", ",", "HbA1c", "9", ".", "1", "%"]
    assert [text[a:b] for a, b in offsets] == words
    assert tags == ["O", "O", "B-Problem", "I-Problem", "I-Problem", "O", "B-Test",
                    "B-Value", "I-Value", "I-Value", "O"]
    assert dropped == 3


def test_spans_to_words_bad_span_names_its_index():
    with pytest.raises(DataError, match="span 1"):
        ner.spans_to_words("abc def", [{"start": 0, "end": 3, "label": "X"},
                                       {"start": 5, "end": 99, "label": "X"}])


# ----------------------------------------------------------------------------- encode


def test_first_sub_token_labels(tokenizer):
    label2id = {"O": 0, "B-X": 1, "I-X": 2}
    w = ner.encode(tokenizer, [["The", "pains", "", "chest"]], [["O", "B-X", "I-X", "O"]],
                   label2id, max_length=32, stride=4)
    ids = tokenizer.convert_tokens_to_ids(["[CLS]", "the", "pain", "##s", "[UNK]", "chest", "[SEP]"])
    assert w.input_ids.tolist() == ids
    assert w.labels.tolist() == [-100, 0, 1, -100, 2, 0, -100]
    assert w.word_ids.tolist() == [-1, 0, 1, 1, 2, 3, -1]
    assert w.offsets.tolist() == [0, 7] and w.doc.tolist() == [0] and w.truncated_words == 0
    unlabelled = ner.encode(tokenizer, [["The", "pains"]], None, label2id, 32, 4)
    assert unlabelled.labels is None


def test_encode_errors(tokenizer):
    label2id = {"O": 0}
    with pytest.raises(UsageError, match="--stride"):
        ner.encode(tokenizer, [["the"]], None, label2id, max_length=8, stride=6)
    with pytest.raises(DataError, match="record 0: 2 words but 1 tags"):
        ner.encode(tokenizer, [["the", "pain"]], [["O"]], label2id, 8, 2)
    with pytest.raises(DataError, match="'B-X' is not one"):
        ner.encode(tokenizer, [["the"]], [["B-X"]], label2id, 8, 2)


def _document(rng, n_words: int) -> tuple[list[str], list[str]]:
    """Known words (one piece) and letter strings (one piece per letter), BIO-tagged."""
    words = [WORDS[i] if rng.random() < 0.5 else "".join(rng.choice(list("xyz"), rng.integers(1, 6)))
             for i in rng.integers(0, len(WORDS), n_words)]
    tags, inside = [], False
    for _ in words:
        kind = rng.choice(["O", "B", "I"] if inside else ["O", "B"])
        tags.append("O" if kind == "O" else f"{kind}-{rng.choice(['A', 'B'])}" if kind == "B"
                    else tags[-1].replace("B-", "I-"))
        inside = kind != "O"
    return words, tags


def _chosen_window(w: ner.Windows, d: int, word: int) -> int:
    """The rule merge() documents, by brute force: most sub-tokens to the nearest cut edge."""
    best, chosen = -1, -1
    for i in np.flatnonzero(w.doc == d):
        wids = w.word_ids[w.window(i)].tolist()
        if word not in wids:
            continue
        pos = wids.index(word)
        left = pos - 1 if i > 0 and w.doc[i - 1] == d else 10**9
        right = len(wids) - 2 - pos if i + 1 < len(w) and w.doc[i + 1] == d else 10**9
        if min(left, right) > best:
            best, chosen = min(left, right), i
    return chosen


def test_windows_stride_and_merge(tokenizer):
    rng = np.random.default_rng(0)
    docs = [_document(rng, n) for n in (3, 60, 0, 45, 1)]
    words, tags = [d[0] for d in docs], [d[1] for d in docs]
    labels = ner.label_list(tags, "bilou")
    label2id = {t: i for i, t in enumerate(labels)}
    gold = [ner.to_scheme(t, "bilou") for t in tags]
    max_length, stride = 16, 4
    w = ner.encode(tokenizer, words, gold, label2id, max_length, stride)

    assert w.lengths.max() <= max_length and w.offsets[-1] == len(w.input_ids)
    assert len(w.labels) == len(w.word_ids) == len(w.input_ids)
    per_doc = np.bincount(w.doc, minlength=len(docs)).tolist()
    assert per_doc[0] == per_doc[4] == 1 and per_doc[2] == 0  # no words, no window
    assert per_doc[1] > 3 and per_doc[3] > 3 and w.n_windows == len(w) == sum(per_doc)
    for i in range(len(w)):
        ids, wids = w.input_ids[w.window(i)], w.word_ids[w.window(i)]
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        # whole words: a window holds every piece of each of its words
        full = ner.encode(tokenizer, [words[w.doc[i]]], None, label2id, 512, 0).word_ids
        for word in set(wids[1:-1].tolist()):
            assert np.count_nonzero(wids == word) == np.count_nonzero(full == word)
        if i + 1 < len(w) and w.doc[i + 1] == w.doc[i]:
            following = w.word_ids[w.window(i + 1)]
            assert np.count_nonzero(wids >= following[1]) >= stride  # overlap of >= stride tokens
            assert following[1] > wids[1]

    # "logits" that encode the gold label on first sub-tokens and noise elsewhere
    logits = []
    for i in range(len(w)):
        lab = w.labels[w.window(i)]
        noise = rng.normal(size=(len(lab) + 3, len(labels)))  # + padding rows, ignored
        noise[np.flatnonzero(lab >= 0), lab[lab >= 0]] = 100.0
        logits.append(noise)
    n_words = [len(x) for x in words]
    merged = ner.merge(w, logits, n_words)
    assert [m.shape for m in merged] == [(n, len(labels)) for n in n_words]
    assert ner.to_tags(merged, labels) == [g if g else [] for g in gold]
    assert ner.to_tags(merged, labels, "bio") == tags

    picked = ner.merge(w, [np.full(len(w.word_ids[w.window(i)]), i) for i in range(len(w))], n_words)
    for d, n in enumerate(n_words):
        assert picked[d].tolist() == [_chosen_window(w, d, k) for k in range(n)]


def test_long_word_is_truncated_and_still_merged(tokenizer):
    words = [["the", "x" * 20, "pain"]]
    w = ner.encode(tokenizer, words, [["O", "B-X", "O"]], {"O": 0, "B-X": 1}, max_length=8, stride=2)
    assert w.truncated_words == 1 and w.lengths.max() <= 8
    merged = ner.merge(w, [np.where(w.labels[w.window(i)] >= 0, w.labels[w.window(i)], 0)
                           for i in range(len(w))], [3])
    assert merged[0].tolist() == [0, 1, 0]


def test_tokenizer_truncation_neither_applies_nor_changes(tokenizer):
    from transformers import BertTokenizerFast

    fresh = BertTokenizerFast.from_pretrained(tokenizer.name_or_path)
    fresh.backend_tokenizer.enable_truncation(3)
    w = ner.encode(fresh, [["the", "patient", "has", "chest", "pain"]], None, {}, 32, 0)
    assert w.word_ids.tolist() == [-1, 0, 1, 2, 3, 4, -1]
    assert fresh.backend_tokenizer.truncation["max_length"] == 3
