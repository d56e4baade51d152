"""`ehrkit notes`: clinical note processing."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ehrkit.notes.choices import Deid, Profile, Segmenter
from ehrkit.cli.options import (FromFormat, Inputs, Output, Quiet, ToFormat, Verbose, fmt,
                                imports_without_gc, inputs, setup)

app = typer.Typer(help="Clinical notes: clean and segment, readmission cohorts, chunks for fine-tuning.",
                  no_args_is_help=True)


@app.command("clean")
def clean(
    paths: Inputs = None,
    output: Output = "-",
    from_: FromFormat = None,
    to: ToFormat = None,
    profile: Annotated[Profile, typer.Option(
        "--profile", help="Cleaning rules: default, or ClinicalBERT's exact fine-tuning "
        "(clinicalbert) or pretraining (clinicalbert-pretrain) cleaning.")] = Profile.default,
    deid: Annotated[Deid, typer.Option(
        "--deid", help="De-identification brackets [** ... **]: typed placeholder such as "
        "[date], strip, or keep (default profile).")] = Deid.placeholder,
    no_segment: Annotated[bool, typer.Option(
        "--no-segment", help="Only clean; do not add the sentences field.")] = False,
    explode: Annotated[bool, typer.Option(
        "--explode", help="One record per sentence (text = the sentence, plus sentence_index).")] = False,
    segmenter: Annotated[Segmenter, typer.Option(
        "--segmenter", help="fast (vectorised) or spacy (spaCy blank English + sentencizer, "
        "the reference; much slower).")] = Segmenter.fast,
    min_chars: Annotated[int, typer.Option(
        "--min-chars", min=0, help="Fuse segments shorter than this many characters into the "
        "previous one (ClinicalBERT: 20).")] = 20,
    min_words: Annotated[int, typer.Option(
        "--min-words", min=0, help="Also fuse segments with fewer words than this (0: off).")] = 0,
    text_field: Annotated[str, typer.Option("--text-field", help="Field holding the note text.")] = "text",
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=1, help="Worker threads (default: one more than the cores).",
        show_default=False)] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Clean notes and split them into sentences.

    Reads note records (any fields; the text in --text-field) and writes them back with the
    text cleaned and a `sentences` list, all other fields unchanged. Streams: memory is
    bounded by the batch size; output order equals input order.

    Examples:

      ehrkit synth notes -n 1000 | ehrkit notes clean > clean.jsonl

      ehrkit notes clean notes.parquet --profile clinicalbert --no-segment -o cb.parquet

      ehrkit notes clean notes.jsonl --explode --to parquet -o sentences.parquet
    """
    setup(quiet, verbose)
    from ehrkit.notes.threads import default_workers, set_polars_pool

    workers = workers or default_workers()
    set_polars_pool(workers)  # before polars is imported
    with imports_without_gc():
        from ehrkit.notes.commands import run_clean
        from ehrkit.notes.pipeline import NotesConfig
        from ehrkit.notes.clean import CleanConfig
        from ehrkit.notes.segment import SegmentConfig

    seg = None if no_segment else SegmentConfig(
        clinical=profile is Profile.default, min_chars=min_chars, min_words=min_words)
    config = NotesConfig(clean=CleanConfig(profile, deid), segment=seg,
                         segmenter=segmenter.value, explode=explode, text_field=text_field)
    run_clean(inputs(paths), output, fmt(from_), fmt(to), config, workers)


@app.command("chunk")
def chunk(
    paths: Inputs = None,
    output: Output = "-",
    from_: FromFormat = None,
    to: ToFormat = None,
    words: Annotated[Optional[int], typer.Option(
        "--words", min=1, metavar="N", show_default=False,
        help="Chunks of N whitespace-separated words (default 318, ClinicalBERT's).")] = None,
    min_remainder: Annotated[Optional[int], typer.Option(
        "--min-remainder", min=1, metavar="N", show_default=False,
        help="Keep a note's trailing words only when they are at least N (default 11: "
        "ClinicalBERT keeps a remainder of more than 10 words).")] = None,
    tokenizer: Annotated[Optional[str], typer.Option(
        "--tokenizer", metavar="DIR", show_default=False,
        help="Chunk by tokens with this model directory's tokenizer (from `ehrkit pretrain`; "
        "local files only) instead of by words.")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(
        "--max-tokens", min=1, show_default=False,
        help="With --tokenizer: tokens per chunk with [CLS] and [SEP] (default 512, or the "
        "model's positions when fewer).")] = None,
    stride: Annotated[Optional[int], typer.Option(
        "--stride", min=0, show_default=False,
        help="With --tokenizer: consecutive chunks share at least this many tokens, "
        "extended back to the start of a word (default 64).")] = None,
    text_field: Annotated[str, typer.Option("--text-field", help="Field holding the note "
                                            "text (without it, a 'sentences' list).")] = "text",
    id_field: Annotated[Optional[str], typer.Option(
        "--id-field", show_default=False,
        help="A parent id field that must be present (it is kept like every field).")] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Split note texts into chunks that fit a model of limited length.

    Reads note records and writes one record per chunk: every field of its note, the text
    replaced by the chunk's (a 'sentences' list is dropped), plus chunk_index (0-based)
    and chunk_count. By words (ClinicalBERT): chunks of --words words joined by single
    spaces; a note's trailing remainder is kept only when it has at least --min-remainder
    words, so a note of 10 words or fewer gives no chunk. By tokens (--tokenizer): windows
    of at most --max-tokens word pieces with [CLS] and [SEP], cut between words and
    overlapping by at least --stride tokens; each chunk is a substring of its note. Null or
    empty texts give no chunk. Streams: memory is bounded by the batch size; output order
    equals input order.

    Examples:

      ehrkit notes clean notes.parquet --profile clinicalbert --no-segment | ehrkit notes chunk

      ehrkit notes chunk notes.parquet --tokenizer mlm-run --max-tokens 128 -o chunks.parquet
    """
    setup(quiet, verbose)
    from ehrkit.notes.chunk import make_chunker, run_chunk

    chunker = make_chunker(words, min_remainder, tokenizer, max_tokens, stride)
    run_chunk(inputs(paths), output, fmt(from_), fmt(to), chunker, text_field, id_field)


from ehrkit.cli.notes_cohort import register as _register_cohort  # noqa: E402

_register_cohort(app)
