"""`timeline tokenize` as a library call: source -> splits -> vocabulary -> timelines, written
in groups of timelines, with a summary."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from ehrkit import log
from ehrkit.errors import DataError, UsageError
from ehrkit.io import RecordWriter
from ehrkit.timeline import splits as splitting
from ehrkit.timeline.tokenize import TokenizeConfig, TokenizeStats, groups, tokenize_group
from ehrkit.timeline.vocab import Vocabulary, VocabSettings, fit


@dataclass(frozen=True)
class SplitConfig:
    assign: bool = False  # by patient, first admission order
    fractions: tuple = (0.7, 0.1, 0.2)
    file: str | None = None  # a MEDS subject_splits file instead
    fit_all: bool = False  # fit the vocabulary on every row, not only train


@dataclass(frozen=True)
class MedsOptions:
    labels: str | None = None  # a MEDS label file: one timeline per prediction time
    timezone: str = "UTC"  # the zone of MEDS's naive times
    timeline_field: str | None = None  # e.g. hospitalization_id: one timeline per value


def open_source(path: str, kind: str | None = None, meds: MedsOptions = MedsOptions()):
    """A CLIF directory or a MEDS dataset, by `kind` or by what the directory holds."""
    directory = Path(path)
    if kind is None:
        kind = "clif" if directory.is_dir() and any(directory.glob("clif_*.parquet")) else "meds"
    if kind == "clif":
        from ehrkit.timeline.clif import open_clif

        return open_clif(directory)
    from ehrkit.timeline.meds import open_meds

    return open_meds(directory, labels=meds.labels, timezone=meds.timezone,
                     timeline_field=meds.timeline_field)


def source_outcomes(source) -> dict:
    """Outcome codes in the source's own vocabulary; none when labels come from a file."""
    if getattr(source, "extra_fields", ()):
        return {}
    from ehrkit.timeline.meds import MEDS_OUTCOMES, MedsSource
    from ehrkit.timeline.tokenize import OUTCOMES

    return dict(MEDS_OUTCOMES if isinstance(source, MedsSource) else OUTCOMES)


def with_splits(timelines: pl.DataFrame, config: SplitConfig, default_file=None) -> pl.DataFrame:
    if config.file or (default_file and not config.assign):
        table = splitting.from_file(config.file or default_file)
    elif config.assign:
        table = splitting.by_first_admission(timelines, config.fractions)
    else:
        return timelines.with_columns(pl.lit(None, pl.String).alias("split"))
    return timelines.join(table, on="patient_id", how="left")


def fit_vocabulary(source, timelines: pl.DataFrame, settings: VocabSettings,
                   config: SplitConfig) -> Vocabulary:
    """Fit on training timelines only, unless told to use every row."""
    if not config.fit_all:
        if timelines["split"].is_null().all():
            raise UsageError("fitting a vocabulary needs a split: pass --split (patient-level "
                             "70/10/20), --splits-file, or --fit-all to fit on every timeline")
        timelines = timelines.filter(pl.col("split") == splitting.SPLITS[0])
        if timelines.height == 0:
            raise DataError("no training timelines to fit the vocabulary on")
    return fit(source.events(timelines), settings)


def run_tokenize(path: str, output: str, fmt: str | None, *, kind: str | None,
                 vocab_in: str | None, vocab_out: str | None, settings: VocabSettings,
                 split: SplitConfig, config: TokenizeConfig, group_size: int,
                 meds: MedsOptions = MedsOptions()) -> TokenizeStats:
    timer, stats = log.Timer(), TokenizeStats()
    source = open_source(path, kind, meds)
    if config.outcomes is None:
        config = replace(config, outcomes=source_outcomes(source))
    extra = list(getattr(source, "extra_fields", ()))
    timelines = with_splits(source.timelines(), split, getattr(source, "splits_file", None))
    if vocab_out:
        vocab = fit_vocabulary(source, timelines, settings, split)
        vocab.save(vocab_out)
    else:
        vocab = Vocabulary.load(vocab_in)
    with RecordWriter(output, fmt) as out, \
            log.progress("timeline tokenize", total=timelines.height, unit="timelines") as bar:
        for group in groups(timelines, group_size):
            events = source.events(group).collect()
            result = tokenize_group(events, vocab, config, stats)
            result = result.join(group.select("timeline_id", *extra, "split"), on="timeline_id",
                                 how="left")
            out.write(result.rename({"timeline_id": source.id_field}).to_arrow())
            bar.update(group.height)
    _summary(source, vocab, stats, timer.seconds, vocab_out)
    return stats


def _summary(source, vocab: Vocabulary, stats: TokenizeStats, seconds: float, fitted) -> None:
    lengths = sorted(stats.lengths) or [0]
    log.info(f"timeline tokenize: {stats.timelines} timelines in {seconds:.1f} s; vocabulary "
             f"{len(vocab)} tokens ({'fitted' if fitted else 'frozen'}); tokens per timeline "
             f"min {lengths[0]} median {lengths[len(lengths) // 2]} max {lengths[-1]}")
    if stats.timelines:
        rates = ", ".join(f"{name} {count / stats.timelines:.1%}"
                          for name, count in stats.outcome_counts.items())
        log.info(f"outcomes: {rates}")
    if stats.dropped_short:
        log.info(f"dropped {stats.dropped_short} timelines that end inside the cut window")
    if stats.unknown_codes:
        log.warn(f"{stats.unknown_codes} events had codes not in the vocabulary (written as UNK)")
    if getattr(source, "skipped", None):
        log.info(f"skipped: {'; '.join(source.skipped)}")
