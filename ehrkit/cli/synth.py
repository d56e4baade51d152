"""`ehrkit synth`: deterministic synthetic data with planted signal."""

from __future__ import annotations

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
