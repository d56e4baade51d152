"""The reference segmenter: `spacy.blank("en")` plus the rule-based sentencizer.

With `clinical=False` it is exactly what ClinicalBERT's pretraining notebook ran. With
`clinical=True` it adds ehrkit's rules: tokenizer special cases keep clinical abbreviations
(`p.o.`, `b.i.d.` ...) whole so their period is not a sentence end, and a component marks the
token after a list number (`1.`) as not starting a sentence. No model is downloaded.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from ehrkit.notes.segment import ABBREVIATIONS


def _no_split_after_list_numbers(doc):
    for i in range(1, len(doc) - 1):
        number, period = doc[i - 1], doc[i]
        before_ok = i == 1 or bool(doc[i - 2].whitespace_)
        if (period.text == "." and period.whitespace_ and number.is_digit
                and len(number.text) <= 2 and not number.whitespace_ and before_ok):
            doc[i + 1].is_sent_start = False
    return doc


@lru_cache(maxsize=2)
def pipeline(clinical: bool):
    import spacy
    from spacy.language import Language
    from spacy.symbols import ORTH

    nlp = spacy.blank("en")
    if clinical:
        for abbreviation in ABBREVIATIONS:
            nlp.tokenizer.add_special_case(abbreviation + ".", [{ORTH: abbreviation + "."}])
        if not Language.has_factory("ehrkit_list_numbers"):
            Language.component("ehrkit_list_numbers", func=_no_split_after_list_numbers)
        nlp.add_pipe("ehrkit_list_numbers")
    nlp.add_pipe("sentencizer")
    return nlp


def split(texts: Iterable[str], clinical: bool, batch_size: int = 64) -> list[list[str]]:
    """Raw (unfused) sentences of each text, stripped, empty ones dropped."""
    nlp = pipeline(clinical)
    out = []
    for doc in nlp.pipe((t or "" for t in texts), batch_size=batch_size):
        out.append([s for s in (sent.text.strip() for sent in doc.sents) if s])
    return out
