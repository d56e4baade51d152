"""Rule-based sentence segmentation of cleaned notes, vectorised with polars.

Two rule sets:
- `clinical` (the default profile): a period does not end a sentence after a clinical
  abbreviation (`p.o.`, `q.d.`, `b.i.d.`, `dr.` ...) or after a list number (`1.` preceded by
  whitespace or the start); decimals and `20mg` never split because a boundary needs
  whitespace after the punctuation.
- `plain` (the ClinicalBERT profiles): every `.`, `!` or `?` followed by whitespace ends a
  sentence, as spaCy's rule-based sentencizer does.

`ehrkit.notes.spacy_ref` implements the same rules on spaCy and is the reference the tests
compare against; this module is the fast path. Segments shorter than `min_chars` characters
or `min_words` words are fused into the previous segment (the first one starts the list),
as ClinicalBERT does with its 20-character threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ehrkit.notes.clean import all_ascii


# Lowercase abbreviations whose final period never ends a sentence (clinical rules). Single
# letters (initials, "dr x.") are protected too, as spaCy's tokenizer exceptions do.
ABBREVIATIONS = (
    "dr", "mr", "mrs", "ms", "st", "vs", "e.g", "i.e", "p.o", "q.d", "q.o.d", "b.i.d",
    "t.i.d", "q.i.d", "q.h.s", "p.r.n", "a.c", "p.c", "h.s", "approx", "a.m", "p.m",
)
# A boundary is END + START: each segment then owns its START mark, and one regex pass can
# fuse every short segment at once (no overlapping matches).
END, START, FUSED = "\x1f", "\x1e", "\x1d"
MARK = END + START + " "
_BOUNDARY_RE = r"([.!?]+[\"')\]]*)\s+"
_BOUNDARY_SPACE_RE = _BOUNDARY_RE.replace(r"\s+", " ")  # for texts whose only whitespace is " "
# A boundary after an abbreviation, an initial or a list number (1-2 digits) is undone.
# One capture group, all but the marks: every group costs time on each of the many matches.
_PROTECTED_RE = (r"((?:^|[ ])[0-9]{1,2}\.|(?-u:\b)(?:" + "|".join(
    a.replace(".", r"\.") for a in sorted(ABBREVIATIONS, key=len, reverse=True))
    + r"|[a-z])\.)" + END + START)  # the space after stays: the next number may need it


@dataclass(frozen=True)
class SegmentConfig:
    clinical: bool = True
    min_chars: int = 20
    min_words: int = 0


def split_expr(text: pl.Expr, clinical: bool, cleaned: bool = False, ascii: bool = False
               ) -> pl.Expr:
    """Mark sentence boundaries in each text with END + START (a string, not yet split).

    `cleaned`: the texts come from the default cleaning profile, which already turned the mark
    characters into spaces and stripped the ends; `ascii`: and they are all ASCII, which the
    profile leaves with no whitespace but single spaces."""
    # A boundary is END + START + a space: the space lets a list number right after a
    # boundary see the space before it, and goes away with the split. Most boundaries follow a
    # plain period: a first pass marks those without a capture group (several times faster);
    # they then no longer match _BOUNDARY_RE, which marks the rest.
    if cleaned and ascii:
        # \s+ is " " here, so the first pass can be a literal one (faster again).
        t = text.str.replace_all(". ", "." + MARK, literal=True)
        t = t.str.replace_all(_BOUNDARY_SPACE_RE, "${1}" + MARK)
    else:
        t = text if cleaned else \
            text.fill_null("").str.replace_all(r"[\x1d\x1e\x1f]", " ").str.strip_chars()
        t = t.str.replace_all(r"\.\s+", "." + MARK)
        t = t.str.replace_all(_BOUNDARY_RE, "${1}" + MARK)
    if clinical:
        t = t.str.replace_all(_PROTECTED_RE, "${1}")
    return t


def segment(texts: pl.Series, config: SegmentConfig, cleaned: bool = False) -> pl.Series:
    """Sentences of each text, short segments fused: a list[str] Series aligned with `texts`.
    `cleaned`: as in split_expr. The select_seq calls run in the calling thread (see
    clean.clean_column)."""
    ascii = cleaned and texts.dtype == pl.String and all_ascii(texts)
    frame = pl.DataFrame({"_seg": texts}).select_seq(
        split_expr(pl.col("_seg"), config.clinical, cleaned, ascii))
    if config.min_words > 0:
        fused = frame.select_seq(fuse_expr(pl.col("_seg").str.split(MARK), config))
    else:
        fused = frame.select_seq(_fuse_marked(pl.col("_seg"), config.min_chars))
    # Materialised step by step: polars would otherwise evaluate the marking twice below.
    segments = fused.to_series()
    return pl.DataFrame({"_seg": segments}).select_seq(
        pl.when(pl.col("_seg").list.first() == "").then(pl.lit([], dtype=pl.List(pl.String)))
        .otherwise(pl.col("_seg")).alias("sentences")).to_series()


def _fuse_marked(marked: pl.Expr, min_chars: int) -> pl.Expr:
    """Fuse segments shorter than `min_chars` on the marked string, in one regex pass; split.

    A short segment's START becomes FUSED; then END + FUSED is a plain space. Every segment
    but the first has a START, so the first one starts the list even when short.
    """
    if min_chars > 0:
        short = START + " ([^" + START + END + "]{0," + str(min_chars - 1) + "})(" + END + "|$)"
        marked = marked.str.replace_all(short, FUSED + "${1}${2}")
        marked = marked.str.replace_all(END + FUSED, " ", literal=True)
    return marked.str.split(MARK)


def fuse_expr(segments: pl.Expr, config: SegmentConfig) -> pl.Expr:
    """Fuse short segments into their predecessor, on a list[str] column.

    Without exploding: each kept segment is prefixed with a space when it is short (it joins
    the previous one) or with a boundary mark otherwise; the list is joined and split again.
    The first segment starts the list even when short, as in ClinicalBERT.
    """
    element = pl.element().str.strip_chars()
    segments = segments.list.eval(element.filter(element != ""))
    short = pl.element().str.len_chars() < config.min_chars
    if config.min_words > 0:
        short = short | (pl.element().str.count_matches(r"\S+") < config.min_words)
    first = pl.int_range(pl.len()) == 0
    marked = (pl.when(first).then(pl.element())
              .when(short).then(pl.lit(" ") + pl.element())
              .otherwise(pl.lit(START) + pl.element()))
    joined = segments.list.eval(marked).list.join("")
    return pl.when(segments.list.len() == 0).then(pl.lit([], dtype=pl.List(pl.String))) \
        .otherwise(joined.str.split(START))


def fuse_lists(segments: list[list[str]], config: SegmentConfig) -> list[list[str]]:
    """The same fusing for segments produced elsewhere (the spaCy reference)."""
    frame = pl.DataFrame({"_seg": pl.Series(segments, dtype=pl.List(pl.String))})
    return frame.select(fuse_expr(pl.col("_seg"), config).alias("_seg"))["_seg"].to_list()
