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

__all__ = ["CleanConfig", "DEID_TYPES", "Deid", "Profile", "clean_column", "clean_expr"]


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
# The same patterns for text where no span holds a "[" (see clean_column): they match the same
# spans, about twice as fast in all (measured). The regex engine finds where a match starts by
# scanning back from its end, and over `[^\]]` that scan runs on to the previous "]" in the
# text, while `[^\[\]]` stops at the span's own "[".
_DEID_NO_NESTING = [(placeholder, pattern.replace(r"[^\]]", r"[^\[\]]"))
                    for placeholder, pattern in DEID_TYPES]
_NESTED_SPAN = r"\[\*\*[^\]]*\["  # a "[" after a "[**", before any "]"
# Whitespace other than a plain space (and the segmenter's mark characters) becomes a space;
# then runs of spaces collapse. Cheap passes: explicit classes are far faster than Unicode \s,
# and single spaces are never rewritten. The ASCII members and the others are two passes (each
# character becomes a space on its own, so the split changes nothing): a class of ASCII
# characters alone is matched about three times faster. Most notes are ASCII with no
# whitespace but spaces and line breaks (_RARE_SPACE finds the others): for those, a literal
# pass for line breaks does it all, faster again.
_OTHER_SPACE_ASCII = r"[\t\n\r\f\v\x1d\x1e\x1f]"
_OTHER_SPACE_UNICODE = r"[\x85\xa0\u2028\u2029]"
_RARE_SPACE = r"[\t\r\f\v\x1d\x1e\x1f]"


@dataclass(frozen=True)
class CleanConfig:
    profile: Profile = Profile.default
    deid: Deid = Deid.placeholder


def clean_column(frame: pl.DataFrame, name: str, config: CleanConfig) -> pl.DataFrame:
    """`frame` with column `name` cleaned, by the fastest form of the rules that is exact for
    these texts (clean_expr's result, always)."""
    if config.profile is not Profile.default:
        return frame.with_columns_seq(clean_expr(pl.col(name), config).alias(name))
    texts = frame[name]
    general = texts.dtype != pl.String
    nested = config.deid is Deid.placeholder and (
        general or bool(texts.str.contains(_NESTED_SPAN).any()))
    rare_space = general or not all_ascii(texts) or bool(texts.str.contains(_RARE_SPACE).any())
    # _seq: evaluated in the calling thread. with_columns() would queue on polars' thread pool,
    # which is smaller than the notes workers (notes.threads), so they would take turns.
    return frame.with_columns_seq(_default(pl.col(name), config.deid, nested, rare_space)
                                  .alias(name))


def clean_expr(text: pl.Expr, config: CleanConfig, nested_spans: bool = True) -> pl.Expr:
    """A polars expression that cleans `text` under the given profile.

    `nested_spans=False` promises that no text has a "[" inside a de-identification span (no
    match of _NESTED_SPAN), which allows faster patterns with the same matches."""
    if config.profile is Profile.default:
        return _default(text, config.deid, nested_spans, rare_space=True)
    return _clinicalbert(text, pretrain=config.profile is Profile.clinicalbert_pretrain)


def _default(text: pl.Expr, deid: Deid, nested_spans: bool, rare_space: bool) -> pl.Expr:
    """`rare_space=False` promises that the texts are ASCII with no whitespace but spaces and
    line breaks (no match of _RARE_SPACE)."""
    t = text.fill_null("").str.to_lowercase()
    if deid is Deid.placeholder:
        for placeholder, pattern in DEID_TYPES if nested_spans else _DEID_NO_NESTING:
            t = t.str.replace_all(pattern, placeholder, literal=False)
    elif deid is Deid.strip:
        t = t.str.replace_all(r"\[\*\*.*?\*\*\]", " ")
    t = t.str.replace_all(r"={2,}|-{2,}|_{2,}|~{2,}", " ")
    t = t.str.replace_all(r"(?-u:\b)m\.d\.", "md").str.replace_all(r"(?-u:\b)dr\.", "dr")
    if rare_space:
        t = t.str.replace_all(_OTHER_SPACE_ASCII, " ").str.replace_all(_OTHER_SPACE_UNICODE, " ")
    else:
        t = t.str.replace_all("\n", " ", literal=True)
    t = t.str.replace_all(" {2,}", " ")
    return t.str.strip_chars()


def all_ascii(texts: pl.Series) -> bool:
    """Whether every text is ASCII: as many characters as bytes (cheaper than a regex)."""
    lengths = texts.to_frame("t").select_seq(
        pl.col("t").str.len_bytes().sum().alias("bytes"), pl.col("t").str.len_chars().sum())
    return lengths.item(0, 0) == lengths.item(0, 1)


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
