"""Note cleaning profiles, as vectorised polars expressions over a text column.

Profiles:
- `default`: keeps what matters clinically. Lowercase, line breaks removed, de-identification
  brackets typed (`[date]`, `[name]`, ...), stripped or kept, separator runs (`==`, `--`,
  `__`) removed, `m.d.` and `dr.` normalised, decimals and doses intact (`2.5 mg`).
- `clinicalbert`: ClinicalBERT's fine-tuning cleaning, step for step (methods.md 1.3),
  quirks included: `[0-9]+\\.` deletes list numbers *and* the integer part of decimals
  (`2.5` becomes `5`), `dr\\.` matches inside words (`addr.`), `---` keeps one `-`.
- `clinicalbert-pretrain`: the same, then every digit deleted and whitespace collapsed
  (the pretraining corpus of the source's notebook).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ehrkit.notes.choices import Deid, Profile

__all__ = ["CleanConfig", "DEID_TYPES", "Deid", "Profile", "clean_expr"]


# Typed placeholders for MIMIC de-identification spans, tried in order (first match wins).
# Patterns run on lowercased text; each is a whole [** ... **] span.
DEID_TYPES = [
    ("[date]", r"\[\*\*(?:[\d\s/-]*|[^\]]*?(?:date|month|year|day|holiday)[^\]]*?)\*\*\]"),
    ("[name]", r"\[\*\*[^\]]*?(?:name|initials?)[^\]]*?\*\*\]"),
    ("[contact]", r"\[\*\*[^\]]*?(?:telephone|fax|pager|e-mail|url|phone)[^\]]*?\*\*\]"),
    ("[location]", r"\[\*\*[^\]]*?(?:hospital|location|address|ward|state|country|street|"
                   r"university|college|company|apartment|po box|zip)[^\]]*?\*\*\]"),
    ("[id]", r"\[\*\*[^\]]*?(?:number|identifier|serial|md number|record|ssn|unit|job)[^\]]*?\*\*\]"),
    ("[age]", r"\[\*\*[^\]]*?age over 90[^\]]*?\*\*\]"),
    ("[deid]", r"\[\*\*.*?\*\*\]"),
]
# Whitespace other than a plain space (and the segmenter's mark characters) becomes a space;
# then runs of spaces collapse. Two cheap passes: an explicit class is far faster than
# Unicode \s, and single spaces are never rewritten.
_OTHER_SPACE = r"[\t\n\r\f\v\x1d\x1e\x1f\x85\xa0\u2028\u2029]"


@dataclass(frozen=True)
class CleanConfig:
    profile: Profile = Profile.default
    deid: Deid = Deid.placeholder


def clean_expr(text: pl.Expr, config: CleanConfig) -> pl.Expr:
    """A polars expression that cleans `text` under the given profile."""
    if config.profile is Profile.default:
        return _default(text, config.deid)
    return _clinicalbert(text, pretrain=config.profile is Profile.clinicalbert_pretrain)


def _default(text: pl.Expr, deid: Deid) -> pl.Expr:
    t = text.fill_null("").str.to_lowercase()
    if deid is Deid.placeholder:
        for placeholder, pattern in DEID_TYPES:
            t = t.str.replace_all(pattern, placeholder, literal=False)
    elif deid is Deid.strip:
        t = t.str.replace_all(r"\[\*\*.*?\*\*\]", " ")
    t = t.str.replace_all(r"={2,}|-{2,}|_{2,}|~{2,}", " ")
    t = t.str.replace_all(r"(?-u:\b)m\.d\.", "md").str.replace_all(r"(?-u:\b)dr\.", "dr")
    t = t.str.replace_all(_OTHER_SPACE, " ").str.replace_all(" {2,}", " ")
    return t.str.strip_chars()


def _clinicalbert(text: pl.Expr, pretrain: bool) -> pl.Expr:
    t = text.fill_null(" ")
    t = t.str.replace_all("\n", " ", literal=True).str.replace_all("\r", " ", literal=True)
    t = t.str.strip_chars().str.to_lowercase()
    t = t.str.replace_all(r"\[(.*?)\]", "")
    t = t.str.replace_all(r"[0-9]+\.", "")
    t = t.str.replace_all(r"dr\.", "doctor").str.replace_all(r"m\.d\.", "md")
    t = t.str.replace_all("admission date:", "", literal=True)
    t = t.str.replace_all("discharge date:", "", literal=True)
    t = t.str.replace_all(r"--|__|==", "")
    if pretrain:
        # The notebook deletes ASCII digits, then " ".join(y.split()).
        t = t.str.replace_all(r"[0-9]", "").str.replace_all(r"\s+", " ").str.strip_chars()
    return t
