"""A deterministic uncased WordPiece vocabulary, learnt with the `tokenizers` BPE trainer
(its WordPiece trainer is not deterministic: see ehrkit.train.mlm)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from transformers import BertTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORD_START = "\u2581"


def train_vocabulary(texts: list[str], vocab_size: int, max_length: int) -> BertTokenizerFast:
    """An uncased WordPiece tokenizer learnt from `texts`, deterministically (module docstring)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token="[UNK]"))
    bpe.normalizer = normalizers.Sequence([normalizers.BertNormalizer(lowercase=True),
                                           normalizers.Replace(_WORD_START, " ")])
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.BertPreTokenizer(),
        pre_tokenizers.Metaspace(replacement=_WORD_START, prepend_scheme="always", split=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  limit_alphabet=1000, show_progress=False)
    bpe.train_from_iterator(texts, trainer, length=len(texts))
    learnt = [t for t, _ in sorted(bpe.get_vocab().items(), key=lambda kv: kv[1])]
    alphabet = [t for t in learnt if len(t) == 1 and t != _WORD_START]
    pieces = SPECIALS + [p for c in alphabet for p in (c, "##" + c)]
    for token in learnt[len(SPECIALS):]:
        pieces.append(token[1:] if token.startswith(_WORD_START) else "##" + token)
    vocab = list(dict.fromkeys(p for p in pieces if p not in ("", "##")))[:max(vocab_size, len(SPECIALS))]
    with tempfile.TemporaryDirectory() as tmp:
        write_vocab(Path(tmp) / "vocab.txt", {t: i for i, t in enumerate(vocab)})
        tokenizer = BertTokenizerFast.from_pretrained(tmp, do_lower_case=True)
    tokenizer.model_max_length = max_length
    return tokenizer


def write_vocab(path: Path, vocab: dict[str, int]) -> None:
    path.write_text("".join(f"{t}\n" for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])))
