"""Token classification (NER) data: read, tag, window and merge. Torch-free.

Formats (methods.md 2.3 and 4.2):

- CoNLL (`read_conll`): one `token<TAB>tag` or `token tag` per line, the tag in the LAST column
  (middle columns such as POS are ignored), a blank line between sentences, `-DOCSTART-` lines
  skipped, optionally gzipped. Tags are `O` or `<prefix>-<type>` with prefix B, I (BIO/IOB1),
  L, U (BILOU) or E, S (IOBES).
- JSONL span records (`spans_to_words`): `text` plus `spans` [{start, end, label}] in character
  offsets, end exclusive; words are runs of letters/digits or single other non-space characters.
- Schemes (`to_scheme`, `repair`): every tag sequence is read as entities first (an I-/L-/E- tag
  that does not continue an entity of its type starts one, which repairs IOB1 input and invalid
  predictions alike), then written out as BIO or BILOU.
- Model inputs (`encode`): RECITAL's labelling, each word's label on its FIRST sub-token and -100
  (ignored by the loss) on the others and on [CLS]/[SEP]. Long documents become overlapping
  windows that start and end on word boundaries; `merge` maps window outputs back to words.
"""

from __future__ import annotations

import gzip
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import pyarrow as pa

from ehrkit.errors import DataError, UsageError

IGNORE = -100  # the label id torch's cross entropy skips
SCHEMES = ("bio", "bilou")
PREFIXES = {"bio": "BI", "bilou": "BILU"}
TAG = re.compile(r"O|[BILUES]-.+")
WORD = re.compile(r"[^\W_]+|\S")  # runs of letters/digits, or one other non-space character


# ----------------------------------------------------------------------------- CoNLL


def read_conll(path: str) -> pa.Table:
    """Sentences of a CoNLL/BIO file as a table: `id` int64 (from 0), `tokens`, `tags`."""
    tokens: list[str] = []
    tags: list[str] = []
    offsets = [0]
    valid = {"O"}
    for number, line in enumerate(_read_text(path).split("\n"), 1):
        line = line.rstrip()
        if not line or line.startswith("-DOCSTART-"):
            if len(tokens) > offsets[-1]:
                offsets.append(len(tokens))
            continue
        # tabs separate columns when present, so a token may hold a space in TSV files
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2:
            raise DataError(f"{path}: line {number}: one column; expected a token and a tag",
                            hint="separate token and tag by a tab or spaces; blank lines end "
                                 "sentences")
        tag = parts[-1].strip()
        if tag not in valid:
            if not TAG.fullmatch(tag):
                raise DataError(f"{path}: line {number}: the last column is not a tag (O or "
                                "B-/I-/L-/U-/E-/S-<type>)")
            valid.add(tag)
        tokens.append(parts[0])
        tags.append(tag)
    if len(tokens) > offsets[-1]:
        offsets.append(len(tokens))
    offs = pa.array(offsets, pa.int32())
    return pa.table({
        "id": pa.array(np.arange(len(offsets) - 1, dtype=np.int64)),
        "tokens": pa.ListArray.from_arrays(offs, pa.array(tokens, pa.string())),
        "tags": pa.ListArray.from_arrays(offs, pa.array(tags, pa.string())),
    })


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file or directory") from None
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}: line {line}: not valid UTF-8") from None


# ----------------------------------------------------------------------------- spans


class Aligned(NamedTuple):
    """Words of a text, their character offsets, their BIO tags, and the spans dropped."""

    words: list[str]
    offsets: list[tuple[int, int]]
    tags: list[str]
    dropped: int  # spans that overlap a kept span (in words) or cover no word


def spans_to_words(text: str, spans: Sequence[dict]) -> Aligned:
    """Split `text` into words and tag them BIO from character `spans` (end exclusive).

    A span that starts or ends inside a word covers that whole word. Spans are taken by start,
    the longer first on a tie; one that shares a word with a span already taken is dropped, so
    the tags stay a valid sequence. A malformed span raises DataError naming its index only.
    """
    found = list(WORD.finditer(text))
    offsets = [m.span() for m in found]
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]
    tags = ["O"] * len(found)
    checked = [_check_span(i, s, len(text)) for i, s in enumerate(spans)]
    dropped, covered = 0, -1  # covered: the last word already tagged
    for start, end, label in sorted(checked, key=lambda s: (s[0], -s[1])):
        first, stop = bisect_right(ends, start), bisect_left(starts, end)
        if first >= stop or first <= covered:
            dropped += 1
            continue
        tags[first:stop] = [f"B-{label}"] + [f"I-{label}"] * (stop - first - 1)
        covered = stop - 1
    return Aligned([m.group() for m in found], offsets, tags, dropped)


def _check_span(index: int, span: dict, n: int) -> tuple[int, int, str]:
    start, end, label = (span.get(k) if isinstance(span, dict) else None
                         for k in ("start", "end", "label"))
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= n):
        raise DataError(f"span {index}: needs integer start < end within the text ({n} chars)")
    if not isinstance(label, str) or not label or label.isspace():
        raise DataError(f"span {index}: needs a non-empty string label")
    return start, end, label


# ----------------------------------------------------------------------------- schemes


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, stop) of every entity; an I-/L-/E- tag that does not continue an entity of
    its type starts a new one, and L-/E-/U-/S- end the entity they are in."""
    found: list[tuple[str, int, int]] = []
    open_: tuple[str, int] | None = None
    for i, tag in enumerate(tags):
        prefix, kind = _parse(tag)
        if not (open_ and prefix in "ILE" and open_[0] == kind):
            if open_:
                found.append((*open_, i))
            open_ = (kind, i) if prefix != "O" else None
        if open_ and prefix in "LEUS":
            found.append((*open_, i + 1))
            open_ = None
    if open_:
        found.append((*open_, len(tags)))
    return found


def to_scheme(tags: Sequence[str], scheme: str) -> list[str]:
    """The same entities written in `scheme` ("bio" or "bilou"); IOB1 and IOBES are read too."""
    _check_scheme(scheme)
    out = ["O"] * len(tags)
    for kind, first, stop in entities(tags):
        if scheme == "bilou" and stop - first == 1:
            out[first] = f"U-{kind}"
            continue
        out[first:stop] = [f"B-{kind}"] + [f"I-{kind}"] * (stop - first - 1)
        if scheme == "bilou":
            out[stop - 1] = f"L-{kind}"
    return out


def repair(tags: Sequence[str], scheme: str | None = None) -> list[str]:
    """A valid sequence from predicted tags: I-X/L-X not after B-X/I-X becomes B-X/U-X, an
    unclosed BILOU entity gets its L-/U-. `scheme` defaults to bilou when any L-/U- tag is
    present, else bio."""
    if scheme is None:
        scheme = "bilou" if any(t[:2] in ("L-", "U-", "E-", "S-") for t in tags) else "bio"
    return to_scheme(tags, scheme)


def label_list(tag_lists, scheme: str) -> list[str]:
    """The label set of a model: "O", then B-,I- (bio) or B-,I-,L-,U- (bilou) of each entity
    type, types sorted. `tag_lists` is an iterable of tag sequences (Python lists)."""
    prefixes = PREFIXES[_check_scheme(scheme)]
    seen = set().union(*map(set, tag_lists))
    kinds = sorted({_parse(t)[1] for t in seen} - {""})
    return ["O"] + [f"{p}-{k}" for k in kinds for p in prefixes]


def _parse(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    if not TAG.fullmatch(tag):
        raise ValueError("a tag is not O or B-/I-/L-/U-/E-/S-<type>")
    return tag[0], tag[2:]


def _check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise UsageError(f"tag scheme '{scheme}': use one of {', '.join(SCHEMES)}")
    return scheme


# ----------------------------------------------------------------------------- windows


@dataclass
class Windows:
    """Model inputs, all windows concatenated (Arrow's list layout): window i is positions
    `offsets[i]:offsets[i+1]` of `input_ids`, `labels` and `word_ids`, and reads [CLS] pieces
    [SEP]. `labels` is None without tags; `word_ids` is the word index within the document, -1
    on [CLS]/[SEP]; `doc[i]` is window i's document. Windows of a document are consecutive and
    in order; a document with no words has none."""

    input_ids: np.ndarray  # int64
    labels: np.ndarray | None  # int64, IGNORE except on first sub-tokens
    word_ids: np.ndarray  # int64
    offsets: np.ndarray  # int64, n_windows + 1
    doc: np.ndarray  # int64, n_windows
    truncated_words: int = 0  # words longer than a window, cut to fit

    def __len__(self) -> int:
        return len(self.doc)

    @property
    def n_windows(self) -> int:
        return len(self.doc)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def window(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))


def encode(tokenizer, words_lists: Sequence[Sequence[str]],
           tag_lists: Sequence[Sequence[str]] | None, label2id: dict[str, int],
           max_length: int, stride: int) -> Windows:
    """Tokenize pre-split words with a transformers fast tokenizer and cut windows of at most
    `max_length` positions (specials included). Tags must already be in the scheme of
    `label2id` (see `to_scheme`). The next window starts at the word holding the token `stride`
    before the previous window's end (overlap at least `stride` tokens, whole words)."""
    size = max_length - 2
    if size < 1:
        raise UsageError(f"--max-length {max_length}: leaves no room beside [CLS] and [SEP]")
    if not 0 <= stride < size:
        raise UsageError(f"--stride {stride}: use 0 to {size - 1} (less than the {size} "
                         "tokens of a window)")
    cls, sep = _special(tokenizer, "cls", "bos"), _special(tokenizer, "sep", "eos")
    unk = tokenizer.unk_token_id
    words_lists = [list(words) for words in words_lists]
    encodings = _backend(tokenizer).encode_batch(words_lists, is_pretokenized=True,
                                                 add_special_tokens=False)
    pieces: list[np.ndarray] = []  # per window: rows ids, labels, word ids, without specials
    docs: list[int] = []
    truncated = 0
    for d, (words, enc) in enumerate(zip(words_lists, encodings)):
        if not words:
            continue
        ids, wids = _fill_empty(enc, len(words), unk, d)
        ids, wids, first, cut = _truncate(ids, wids, size)
        truncated += cut
        labels = np.full(len(ids), IGNORE)
        if tag_lists is not None:
            word_labels = _label_ids(tag_lists[d], len(words), label2id, d)
            labels = np.where(first, word_labels[wids], IGNORE)
        rows = np.stack([ids, labels, wids])
        for a, b in _spans(np.append(np.flatnonzero(first), len(ids)), size, stride):
            pieces.append(rows[:, a:b])
            docs.append(d)
    return _pack(pieces, docs, cls, sep, tag_lists is not None, truncated)


def _pack(pieces: list[np.ndarray], docs: list[int], cls: int, sep: int, labelled: bool,
          truncated: int) -> Windows:
    head, tail = np.array([[cls], [IGNORE], [-1]]), np.array([[sep], [IGNORE], [-1]])
    columns = [x for piece in pieces for x in (head, piece, tail)]
    ids, labels, wids = np.concatenate(columns, axis=1).astype(np.int64) if columns \
        else np.zeros((3, 0), np.int64)
    lengths = np.array([piece.shape[1] + 2 for piece in pieces], np.int64)
    return Windows(ids, labels if labelled else None, wids,
                   np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   np.array(docs, np.int64), truncated)


def _backend(tokenizer):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UsageError("NER needs a fast tokenizer (a model directory with tokenizer.json "
                         "or a vocabulary that transformers can convert)")
    if backend.truncation or backend.padding:  # a copy: the caller's tokenizer stays as it was
        from tokenizers import Tokenizer

        backend = Tokenizer.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
    return backend


def _special(tokenizer, name: str, fallback: str) -> int:
    found = getattr(tokenizer, f"{name}_token_id", None)
    found = getattr(tokenizer, f"{fallback}_token_id", None) if found is None else found
    if found is None:
        raise UsageError(f"the tokenizer has no {name.upper()} or {fallback.upper()} token")
    return found


def _fill_empty(enc, n_words: int, unk: int | None, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids and word ids of one document, with [UNK] for words that tokenize to nothing (empty,
    or only characters the normalizer drops), so that every word has a first sub-token."""
    ids = np.array(enc.ids, np.int64)
    wids = np.array(enc.word_ids, np.int64)
    missing = np.flatnonzero(np.bincount(wids, minlength=n_words) == 0)
    if missing.size:
        if unk is None:
            raise DataError(f"record {d}: a word tokenizes to nothing and the tokenizer has no "
                            "unknown token")
        at = np.searchsorted(wids, missing)  # word ids ascend: keeps the words in order
        ids, wids = np.insert(ids, at, unk), np.insert(wids, at, missing)
    return ids, wids


def _truncate(ids, wids, size: int):
    """Cut words longer than a window to its size; also return first-sub-token flags and the
    number of words cut."""
    first = np.ones(len(ids), bool)
    first[1:] = wids[1:] != wids[:-1]
    starts = np.flatnonzero(first)
    keep = np.arange(len(ids)) - starts[wids] < size
    if keep.all():
        return ids, wids, first, 0
    cut = int(np.count_nonzero(np.diff(np.append(starts, len(ids))) > size))
    return ids[keep], wids[keep], first[keep], cut


def _label_ids(tags: Sequence[str], n_words: int, label2id: dict[str, int], d: int) -> np.ndarray:
    if len(tags) != n_words:
        raise DataError(f"record {d}: {n_words} words but {len(tags)} tags")
    try:
        return np.array([label2id[t] for t in tags], np.int64)
    except KeyError as err:
        raise DataError(f"record {d}: tag '{err.args[0]}' is not one of the model's "
                        f"{len(label2id)} labels") from None


def _spans(bounds: np.ndarray, size: int, stride: int) -> list[tuple[int, int]]:
    """Token ranges [a, b) of the windows over one document; `bounds` are the word starts plus
    the document's end, and no word is longer than `size`."""
    spans = []
    w, last = 0, len(bounds) - 1
    while True:
        a = int(bounds[w])
        e = int(np.searchsorted(bounds, a + size, side="right")) - 1  # last word end that fits
        spans.append((a, int(bounds[e])))
        if e == last:
            return spans
        nxt = int(np.searchsorted(bounds, bounds[e] - stride, side="right")) - 1
        w = nxt if nxt > w else w + 1


# ----------------------------------------------------------------------------- merge


def merge(windows: Windows, window_logits: Sequence[np.ndarray],
          n_words_per_doc: Sequence[int]) -> list[np.ndarray]:
    """Per document, per word: the row of `window_logits` (one array per window, its first
    dimension at least the window's length: padding after it is ignored) at the word's first
    sub-token, from the window where the word has the most context, i.e. is farthest from an
    edge where the document was cut (a document's own start and end are not cuts; ties go to
    the earlier window). Rows may be logits, probabilities or label ids. A word no window saw
    gets label id 0 ("O"): 0 for 1-D input, a one-hot row on column 0 for 2-D."""
    if len(window_logits) != len(windows):
        raise ValueError(f"{len(window_logits)} logit arrays for {len(windows)} windows")
    sample = np.asarray(window_logits[0]) if len(windows) else np.zeros((0,), np.int64)
    out, best = [], []
    for n in n_words_per_doc:
        values = np.zeros((n, *sample.shape[1:]), sample.dtype)
        if values.ndim == 2:
            values[:, 0] = 1
        out.append(values)
        best.append(np.full(n, -1, np.int64))
    cut_before = np.append(False, windows.doc[1:] == windows.doc[:-1])
    cut_after = np.append(cut_before[1:], False)
    far = np.iinfo(np.int64).max
    for i, logits in enumerate(window_logits):
        wids = windows.word_ids[windows.window(i)]
        pos = np.flatnonzero((wids >= 0) & (wids != np.append(-1, wids[:-1])))
        left = pos - 1 if cut_before[i] else np.full(len(pos), far)
        right = len(wids) - 2 - pos if cut_after[i] else np.full(len(pos), far)
        dist, words = np.minimum(left, right), wids[pos]
        d = windows.doc[i]
        better = dist > best[d][words]
        best[d][words[better]] = dist[better]
        out[d][words[better]] = np.asarray(logits)[pos[better]]
    return out


def to_tags(word_values: Sequence[np.ndarray], labels: Sequence[str],
            scheme: str | None = None) -> list[list[str]]:
    """Tags per document from `merge` output (label ids, or rows whose argmax is the label),
    repaired into a valid sequence of `scheme` (default: as `repair` infers it)."""
    names = np.asarray(labels, dtype=object)
    return [repair(list(names[v.argmax(-1) if v.ndim == 2 else v]), scheme) for v in word_values]
