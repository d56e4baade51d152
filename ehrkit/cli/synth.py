"""`ehrkit synth`: deterministic synthetic data with planted signal."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Optional

import typer

from ehrkit.cli.options import Output, Quiet, Seed, ToFormat, Verbose, fmt, setup

app = typer.Typer(help="Generate deterministic synthetic data (notes, CLIF, series, NER, pairs).",
                  no_args_is_help=True)

Count = Annotated[int, typer.Option("-n", "--count", min=0, help="How many records to generate.")]


@app.command("notes")
def notes(
    n: Count = 1000,
    seed: Seed = 0,
    output: Output = "-",
    to: ToFormat = None,
    admissions: Annotated[Optional[str], typer.Option(
        "--admissions", help="Also write the matching ADMISSIONS rows to this file.",
        metavar="PATH")] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Synthetic MIMIC-III style NOTEEVENTS records (and ADMISSIONS rows).

    Writes note records: subject_id, hadm_id, chartdate, charttime, category, description,
    text. Texts have de-identification placeholders, section headers, numbered lists,
    abbreviations and lab values. Admissions followed by a non-elective readmission within
    30 days have notes that mention risk factors more often: the label is learnable.

    Examples:

      ehrkit synth notes -n 1000 --seed 1 > notes.jsonl

      ehrkit synth notes -n 5000 -o notes.parquet --admissions admissions.parquet
    """
    setup(quiet, verbose)
    from ehrkit.synth.commands import write_notes

    write_notes(n, seed, output, fmt(to), admissions)


@app.command("clif")
def clif(
    n: Annotated[int, typer.Option("-n", "--count", min=0,
                                   help="How many hospitalizations to generate.")] = 500,
    seed: Seed = 0,
    output: Annotated[str, typer.Option("-o", "--output", help="Output directory (replaced "
                                        "atomically if it exists).", metavar="DIR")] = ...,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Synthetic CLIF 2.1 directory: nine clif_<table>.parquet tables.

    Writes DIR/clif_{patient,hospitalization,adt,vitals,labs,medication_admin_continuous,
    respiratory_support,patient_assessments,position}.parquet with the CLIF 2.1 column names,
    types and mCIDE categories of the MIMIC-IV demo. A latent severity per hospitalization
    drives the first 24 hours of vitals and labs and the outcomes: in-hospital death
    (discharge_category 'Expired'), stays over 7 days, ICU admission and invasive mechanical
    ventilation, so models trained on the first day can learn them. The directory appears
    only when every table is complete.

    Examples:

      ehrkit synth clif -n 500 --seed 1 -o clif/

      ehrkit synth clif -n 100000 -o /data/synth-clif && ls /data/synth-clif
    """
    setup(quiet, verbose)
    from ehrkit.synth.commands import write_clif

    write_clif(n, seed, output)


@app.command("series")
def series(
    n: Annotated[int, typer.Option("-n", "--count", min=0,
                                   help="How many ICU stays to generate.")] = 1000,
    seed: Seed = 0,
    output: Output = "-",
    to: ToFormat = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Synthetic hourly ICU series: 48 hours x the 17 MIMIC-III benchmark variables.

    Writes series records: stay_id, patient_id, hours (48), values (48 x 17 float32, null
    where not observed), mask (48 x 17 int8, 1 = observed), mortality (int8) and phenotypes
    (25 int8 labels). Variable and phenotype names, in column order, are
    ehrkit.synth.series.VARIABLES and PHENOTYPES; GCS and capillary refill hold their ordinal
    values. Each phenotype shifts two variables and a latent severity drives vitals and
    mortality, so every label is learnable from the series.

    Examples:

      ehrkit synth series -n 5000 --seed 1 -o series.parquet

      ehrkit synth series -n 10 | head -n 1
    """
    setup(quiet, verbose)
    from ehrkit.synth.commands import write_series

    write_series(n, seed, output, fmt(to))


class NerFormat(str, Enum):
    jsonl = "jsonl"
    parquet = "parquet"
    conll = "conll"


@app.command("ner")
def ner(
    n: Annotated[int, typer.Option("-n", "--count", min=0,
                                   help="How many sentences to generate.")] = 1000,
    seed: Seed = 0,
    output: Output = "-",
    to: Annotated[NerFormat | None, typer.Option(
        "--to", help="Output format (default: from the extension, .conll/.iob/.tsv/.txt being "
        "CoNLL; JSONL on stdout).", show_default=False)] = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Synthetic clinical named-entity sentences with BIO tags (Disease, Drug, Dose).

    Writes NER records: id, text, tokens, tags (BIO) and spans (start, end, label: character
    offsets into text). With --to conll, or an output named *.conll, *.iob, *.tsv or *.txt,
    writes CoNLL text instead: one "token<TAB>tag" line per token and a blank line after each
    sentence, as in NCBI-disease. Entities span one to four tokens, so B- and I- tags occur.

    Examples:

      ehrkit synth ner -n 2000 --seed 1 -o train.conll

      ehrkit synth ner -n 500 -o ner.jsonl
    """
    setup(quiet, verbose)
    from ehrkit.synth.commands import write_ner

    write_ner(n, seed, output, to.value if to is not None else None)


@app.command("pairs")
def pairs(
    n: Annotated[int, typer.Option("-n", "--count", min=0,
                                   help="How many sentence pairs to generate.")] = 1000,
    seed: Seed = 0,
    output: Output = "-",
    to: ToFormat = None,
    quiet: Quiet = False,
    verbose: Verbose = 0,
) -> None:
    """Synthetic clinical sentence pairs for similarity (STS) and inference (NLI).

    Writes pair records: id, sentence_a, sentence_b, similarity (0-5) and entailment
    (entailment, neutral or contradiction, sentence_a being the premise). Pairs are built as
    paraphrases (similar, entailed), negations (contradiction), added or dropped findings and
    unrelated sentences, so both labels are learnable from the text.

    Examples:

      ehrkit synth pairs -n 2000 --seed 1 -o pairs.jsonl

      ehrkit synth pairs -n 5 | jq -c '[.similarity, .entailment]'
    """
    setup(quiet, verbose)
    from ehrkit.synth.commands import write_pairs

    write_pairs(n, seed, output, fmt(to))
