"""`timeline tokenize` as a library call: source -> splits -> vocabulary -> timelines, written
in groups of timelines, with a summary."""

from __future__ import annotations

from dataclasses import dataclass
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


def open_source(path: str, kind: str | None = None):
    """A CLIF directory or a MEDS dataset, by `kind` or by what the directory holds."""
    directory = Path(path)
    if kind is None:
        kind = "clif" if any(directory.glob("clif_*.parquet")) else "meds"
    if kind == "clif":
        from ehrkit.timeline.clif import open_clif

        return open_clif(directory)
    from ehrkit.timeline.meds import open_meds

    return open_meds(directory)


def with_splits(timelines: pl.DataFrame, config: SplitConfig) -> pl.DataFrame:
    if config.file:
        table = splitting.from_file(config.file)
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
                 split: SplitConfig, config: TokenizeConfig, group_size: int) -> TokenizeStats:
    timer, stats = log.Timer(), TokenizeStats()
    source = open_source(path, kind)
    timelines = with_splits(source.timelines(), split)
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
            result = result.join(group.select("timeline_id", "split"), on="timeline_id", how="left")
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
        log.info(f"tables absent, skipped: {', '.join(source.skipped)}")
