"""Event frames to integer token timelines, outcomes and the 24-hour cut.

A source (CLIF or MEDS) provides `timelines()` (timeline_id, patient_id, start, end, ...) and
`events(timelines)`; everything here is source-independent. Timelines are processed in groups
so memory stays bounded however many there are, and a group's output does not depend on the
other groups: shards tokenized separately with one vocabulary concatenate to the same result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterator

import polars as pl

from ehrkit.timeline.events import SORT_KEYS, SUFFIX
from ehrkit.timeline.vocab import NAN, PAD, TIME_GAPS, UNK, Vocabulary, assign_bins

# Outcome codes (methods.md 3.5), matched against each source's codes.
OUTCOMES = {"same_admission_death": "DSCG_expired", "icu_admission": "ADT_icu",
            "imv_event": "RESP_imv"}
LONG_STAY = timedelta(hours=168)


@dataclass(frozen=True)
class TokenizeConfig:
    cut: timedelta | None = None  # keep only the first `cut` of each timeline
    keep_short: bool = False  # with a cut: keep timelines that end inside the window
    max_length: int | None = None  # truncate (with TRUNC) to this many tokens
    pad: bool = False  # right-pad to max_length with PAD
    with_tokens: bool = False  # also write the token strings
    outcomes: dict | None = None  # outcome name -> code; None: the source's own


@dataclass
class TokenizeStats:
    timelines: int = 0
    dropped_short: int = 0
    unknown_codes: int = 0
    lengths: list = field(default_factory=list)
    outcome_counts: dict = field(default_factory=dict)


def tokenize_group(events: pl.DataFrame, vocab: Vocabulary, config: TokenizeConfig,
                   stats: TokenizeStats) -> pl.DataFrame:
    """Token timelines for the events of some timelines (all of their events)."""
    bounds = events.group_by("timeline_id").agg(
        pl.col("time").min().alias("start"), pl.col("time").max().alias("end"),
        pl.col("patient_id").first())
    outcomes = _outcomes(events, bounds, OUTCOMES if config.outcomes is None else config.outcomes)
    if config.cut is not None:
        events, bounds = _cut(events, bounds, config, stats)
    ids = _event_tokens(assign_bins(events, vocab), vocab, stats)
    ids = ids.sort("timeline_id", *SORT_KEYS)
    if vocab.settings.time_tokens:
        ids = _with_gap_tokens(ids, vocab)
    out = (ids.with_columns(pl.col("time").repeat_by(pl.col("ids").list.len()).alias("times"))
           .group_by("timeline_id", maintain_order=True)
           .agg(pl.col("ids").list.explode(keep_nulls=False, empty_as_null=False).alias("input_ids"),
                pl.col("times").list.explode(keep_nulls=False, empty_as_null=False)))
    out = _limit_length(out, vocab, config)
    out = bounds.select("timeline_id", "patient_id").join(out, on="timeline_id", how="inner") \
        .join(outcomes, on="timeline_id", how="left").sort("timeline_id")
    if config.with_tokens:
        out = out.with_columns(pl.col("input_ids").list.eval(
            pl.element().replace_strict(list(range(len(vocab))), vocab.tokens)).alias("tokens"))
    stats.timelines += out.height
    stats.lengths += out["length"].to_list()
    for name in outcomes.columns[1:]:
        stats.outcome_counts[name] = stats.outcome_counts.get(name, 0) + int(
            out[name].cast(pl.Int64).sum() or 0)
    return out


def _outcomes(events: pl.DataFrame, bounds: pl.DataFrame, codes: dict) -> pl.DataFrame:
    """Labels from the full timeline; ICU and IMV also flag events in the first 24 hours."""
    frame = events.join(bounds.select("timeline_id", "start"), on="timeline_id")
    early = (pl.col("time") - pl.col("start")) <= timedelta(hours=24)
    aggs = []
    for name, code in codes.items():
        # A code ending in "//" names a MEDS code prefix (ADT//TRANSFER_IN//icu//...)
        hit = pl.col("code").str.starts_with(code) if code.endswith("//") else pl.col("code") == code
        aggs.append(hit.any().cast(pl.Int8).alias(name))
        if name != "same_admission_death":
            aggs.append((hit & early).any().cast(pl.Int8).alias(f"{name}_24h"))
    if not aggs:
        return bounds.select("timeline_id")
    labels = frame.group_by("timeline_id").agg(aggs)
    los = bounds.select("timeline_id", ((pl.col("end") - pl.col("start")) > LONG_STAY)
                        .cast(pl.Int8).alias("long_length_of_stay"))
    return labels.join(los, on="timeline_id")


def _cut(events, bounds, config, stats):
    """Keep events within `cut` of the start; drop timelines that end inside the window unless
    asked to keep them (their discharge tokens would leak the outcome)."""
    if not config.keep_short:
        long_enough = bounds.filter((pl.col("end") - pl.col("start")) > config.cut)
        stats.dropped_short += bounds.height - long_enough.height
        bounds = long_enough
    events = events.join(bounds.select("timeline_id", "start"), on="timeline_id")
    events = events.filter((pl.col("time") - pl.col("start")) <= config.cut)
    if not config.keep_short:
        events = events.filter(pl.col("section") != SUFFIX)
    return events.drop("start"), bounds


def _token_ids(vocab: Vocabulary) -> pl.DataFrame:
    return pl.DataFrame({"token": vocab.tokens, "id": pl.int_range(0, len(vocab), eager=True,
                                                                  dtype=pl.Int32)})


def _lookup(frame: pl.DataFrame, column: str, table: pl.DataFrame, name: str) -> pl.DataFrame:
    return frame.join(table.rename({"token": column, "id": name}), on=column, how="left")


def _event_tokens(events: pl.DataFrame, vocab: Vocabulary, stats: TokenizeStats) -> pl.DataFrame:
    """Each event's token ids as a list: [code, bin] (+ label), or one fused token."""
    table = _token_ids(vocab)
    unk = vocab.index[UNK]
    known = pl.col("code").is_in(vocab.tokens) | pl.col("code").is_in(list(vocab.cuts))
    stats.unknown_codes += events.filter(~known).height
    bin_text = pl.when(pl.col("bin") == -1).then(pl.lit(NAN)) \
        .otherwise(pl.lit("Q") + pl.col("bin").cast(pl.String))
    if vocab.settings.fused:
        first = pl.when(pl.col("binned")).then(pl.col("code") + "_" + bin_text).otherwise("code")
        events = events.with_columns(first.alias("_t1"), pl.lit(None, pl.String).alias("_t2"))
    else:
        second = pl.when(pl.col("binned") & known).then(bin_text)
        events = events.with_columns(pl.col("code").alias("_t1"), second.alias("_t2"))
    events = _lookup(events, "_t1", table, "_i1")
    events = _lookup(events, "_t2", table, "_i2")
    events = _lookup(events, "label", table, "_i3")
    unknown_second = pl.col("binned") & ~known & (not vocab.settings.fused)
    return events.with_columns(pl.concat_list(
        pl.col("_i1").fill_null(unk),
        pl.when(unknown_second).then(pl.lit(unk, pl.Int32)).otherwise(pl.col("_i2")),
        pl.when(pl.col("label").is_not_null()).then(pl.col("_i3").fill_null(unk)),
    ).list.drop_nulls().alias("ids")).drop("_t1", "_t2", "_i1", "_i2", "_i3")


def _with_gap_tokens(events: pl.DataFrame, vocab: Vocabulary) -> pl.DataFrame:
    """Prepend a time-gap token to an event that follows the previous one by 5 minutes or more."""
    minutes = (pl.col("time") - pl.col("time").shift(1).over("timeline_id")).dt.total_seconds() / 60
    breaks = [m for _, m in TIME_GAPS]
    names = [name for name, _ in TIME_GAPS]
    ids = [vocab.index[name] for name in names]
    bucket = pl.lit(None, pl.Int32)
    for minute, token_id in zip(breaks, ids):
        bucket = pl.when(minutes >= minute).then(pl.lit(token_id, pl.Int32)).otherwise(bucket)
    return events.with_columns(
        pl.when(bucket.is_not_null()).then(pl.concat_list(bucket, "ids")).otherwise("ids").alias("ids"))


def _limit_length(frame: pl.DataFrame, vocab: Vocabulary, config: TokenizeConfig) -> pl.DataFrame:
    frame = frame.with_columns(pl.col("input_ids").list.len().cast(pl.Int32).alias("length"))
    if config.max_length is None:
        return frame
    n = config.max_length
    too_long = pl.col("length") > n
    trunc = pl.lit([vocab.index["TRUNC"]], dtype=pl.List(pl.Int32))
    frame = frame.with_columns(
        pl.when(too_long).then(pl.concat_list(pl.col("input_ids").list.head(n - 1), trunc))
        .otherwise("input_ids").alias("input_ids"),
        pl.when(too_long).then(pl.concat_list(pl.col("times").list.head(n - 1),
                                              pl.col("times").list.get(n - 1)))
        .otherwise("times").alias("times"),
        pl.min_horizontal("length", pl.lit(n)).alias("length"))
    if config.pad:
        pad = vocab.index[PAD]
        missing = pl.lit(n) - pl.col("input_ids").list.len()
        frame = frame.with_columns(
            pl.concat_list("input_ids", pl.lit(pad, pl.Int32).repeat_by(missing)).alias("input_ids"),
            pl.concat_list("times", pl.lit(None, frame.schema["times"].inner).repeat_by(missing))
            .alias("times"))
    return frame


def groups(timelines: pl.DataFrame, size: int) -> Iterator[pl.DataFrame]:
    """Slices of the timeline table, `size` timelines each, in a stable order."""
    timelines = timelines.sort("timeline_id")
    for offset in range(0, timelines.height, size):
        yield timelines.slice(offset, size)


def parse_duration(text: str) -> timedelta:
    """'24h', '90m', '2d' or '1w' as a timedelta.

    >>> parse_duration("24h"), parse_duration("2d") == timedelta(hours=48)
    (datetime.timedelta(days=1), True)
    """
    from ehrkit.errors import UsageError

    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:].lower()
    try:
        amount = float(number)
    except ValueError:
        amount = -1
    if unit not in units or amount <= 0:
        raise UsageError(f"'{text}' is not a duration like 24h, 90m, 2d or 1w")
    return timedelta(**{units[unit]: amount})
