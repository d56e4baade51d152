"""Fine-tuning on the real, openly licensed data in ../shared/data, end to end through the CLI.
Every step is an `ehrkit` command (printed as it runs), so each figure can be reproduced by
hand; the only non-ehrkit step turns the MTS-Dialog CSV files into JSONL records.

1. NER, NCBI-disease (BIO, one entity type): a small BERT pretrained from scratch (masked LM,
   WordPiece vocabulary learnt on the training sentences) for a few minutes, then fine-tuned
   on train.tsv, validated on devel.tsv; seqeval-style entity F1 on test.tsv.
2. Section classification, MTS-Dialog (20 section headers from the section text): a small BERT
   pretrained on the training set's section texts and dialogues, fine-tuned on the training
   set (a tenth of it validates); accuracy and macro-F1 on the validation file (100 sections)
   as the test set.
3. Multitask (MT-Clinical BERT): NCBI-disease NER, MTS-Dialog section headers and a synthetic
   similarity task (`synth pairs`) on one encoder pretrained on all their texts, with
   `--compare-single`: the per-task table multitask vs single-task.
4. Timeline outcomes, CLIF 2.1 MIMIC-IV demo (310 hospitalisations): a tiny causal model
   pretrained on the full training timelines, fine-tuned on the first 24 hours for in-hospital
   death and for ICU admission; ICU admission is evaluated only on stays with no ICU in the
   first 24 hours (`--by icu_admission_24h`, the subgroup `=0`), as FMs-for-EHRs does.

    python bench/real_data.py                    # all four (about 30 minutes on 2 CPU cores)
    python bench/real_data.py --only ner --minutes 3
    python bench/real_data.py --only multitask --minutes 4
    python bench/real_data.py --preset base --device cuda     # on a GPU
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def ehrkit(*args: str, cwd: Path) -> str:
    print("  $ ehrkit " + " ".join(shlex.quote(a) for a in args), flush=True)
    done = subprocess.run([sys.executable, "-m", "ehrkit", *args], cwd=cwd, capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"ehrkit {args[0]} failed (exit {done.returncode})")
    return done.stdout


def metrics(path: Path, subgroup: str | None = None) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("subgroup") == subgroup and r["value"] is not None:
            out[r["metric"]] = (r["value"], r["ci_low"], r["ci_high"], r["n"])
    return out


def show(title: str, found: dict, names: list[str]) -> None:
    print(f"== {title}")
    for name in names:
        if name in found:
            value, low, high, n = found[name]
            ci = f" ({low:.3f}-{high:.3f})" if low is not None else ""
            print(f"   {name:<16} {value:.3f}{ci}  n={n}")


def ner(work: Path, a) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ehrkit.finetune.ner import read_conll

    source = DATA / "ner" / "ncbi-disease"
    sentences = read_conll(str(source / "train.tsv"))["tokens"].to_pylist()
    pq.write_table(pa.table({"text": [" ".join(s) for s in sentences]}), work / "ncbi-text.parquet")
    ehrkit("pretrain", "ncbi-text.parquet", "--from-scratch", "--vocab-size", "8000", "--preset",
           a.preset, "--max-length", "128", "--batch-size", "32", "--lr", "1e-3", "--epochs", "50",
           "--max-minutes", str(a.minutes), "--eval-every", "200", "--device", a.device, "-q",
           "-o", "ncbi-mlm", cwd=work)
    ehrkit("finetune", *(str(source / f) for f in ("train.tsv", "devel.tsv", "test.tsv")),
           "--task", "ner", "--init", "ncbi-mlm", "--max-length", "128", "--batch-size", "16",
           "--lr", "1e-3", "--epochs", "5", "--max-minutes", str(a.minutes), "--eval-every", "200",
           "--device", a.device, "-q", "-o", "ncbi-ner", cwd=work)
    ehrkit("evaluate", "ncbi-ner/predictions.parquet", "-q", "-o", "ncbi-ner.metrics.jsonl", cwd=work)
    show("NCBI-disease NER (test.tsv)", metrics(work / "ncbi-ner.metrics.jsonl"),
         ["entity_f1", "entity_precision", "entity_recall", "token_f1"])


def mts_records(work: Path):
    """MTS-Dialog as records (the validation file as the held-out split) in work/mts.jsonl;
    returns the training sections' texts and dialogues, for pretraining."""
    import polars as pl

    source = DATA / "notes" / "mts-dialog"
    train = pl.read_csv(source / "MTS_Dataset_TrainingSet.csv").with_columns(split=pl.lit("train"))
    test = pl.read_csv(source / "MTS_Dataset_ValidationSet.csv").with_columns(split=pl.lit("held_out"))
    records = pl.concat([train, test]).select("ID", "section_header", text="section_text",
                                              split="split")
    records.write_ndjson(work / "mts.jsonl")
    return pl.concat([train.select(text="section_text"), train.select(text="dialogue")])


def mts(work: Path, a) -> None:
    mts_records(work).write_parquet(work / "mts-corpus.parquet")
    ehrkit("pretrain", "mts-corpus.parquet", "--from-scratch", "--vocab-size", "8000", "--preset",
           a.preset, "--max-length", "128", "--batch-size", "32", "--lr", "1e-3", "--epochs", "50",
           "--max-minutes", str(a.minutes), "--eval-every", "200", "--device", a.device, "-q",
           "-o", "mts-mlm", cwd=work)
    ehrkit("finetune", "mts.jsonl", "--init", "mts-mlm", "--label-field", "section_header",
           "--task", "multiclass", "--max-length", "128", "--batch-size", "16", "--lr", "1e-3",
           "--epochs", "10", "--max-minutes", str(a.minutes), "--eval-every", "50",
           "--device", a.device, "-q", "-o", "mts-cls", cwd=work)
    ehrkit("evaluate", "mts-cls/predictions.parquet", "-q", "-o", "mts.metrics.jsonl", cwd=work)
    show("MTS-Dialog section header, 20 classes (validation file as test)",
         metrics(work / "mts.metrics.jsonl"), ["accuracy", "macro_f1", "auroc_macro"])


def multitask(work: Path, a) -> None:
    """MT-Clinical BERT's setting on open data: NCBI-disease NER, MTS-Dialog section headers and
    a synthetic sentence-similarity task on one encoder, against each task alone."""
    import polars as pl

    from ehrkit.finetune.ner import read_conll

    source = DATA / "ner" / "ncbi-disease"
    sentences = read_conll(str(source / "train.tsv"))["tokens"].to_pylist()
    ehrkit("synth", "pairs", "-n", "3000", "--seed", "1", "-q", "-o", "pairs.jsonl", cwd=work)
    pairs = pl.read_ndjson(work / "pairs.jsonl")
    corpus = pl.concat([pl.DataFrame({"text": [" ".join(s) for s in sentences]}),
                        mts_records(work),
                        pairs.select(text=pl.col("sentence_a") + " " + pl.col("sentence_b"))])
    corpus.write_parquet(work / "mt-corpus.parquet")
    ehrkit("pretrain", "mt-corpus.parquet", "--from-scratch", "--vocab-size", "8000", "--preset",
           a.preset, "--max-length", "128", "--batch-size", "32", "--lr", "1e-3", "--epochs", "50",
           "--max-minutes", str(a.minutes), "--eval-every", "200", "--device", a.device, "-q",
           "-o", "mt-mlm", cwd=work)
    ncbi = ",".join(str(source / f) for f in ("train.tsv", "devel.tsv", "test.tsv"))
    ehrkit("multitask", "--init", "mt-mlm", "--task", f"ncbi=ner:{ncbi}",
           "--task", "mts=classification:mts.jsonl label=section_header",
           "--task", "sim=regression:pairs.jsonl label=similarity", "--max-length", "128",
           "--batch-size", "16", "--lr", "1e-3", "--epochs", "10", "--max-minutes", str(a.minutes),
           "--eval-every", "100", "--compare-single", "--device", a.device, "-q", "-o", "mt", cwd=work)
    from ehrkit.multitask.run import format_table

    print("== " + format_table(json.loads((work / "mt" / "compare.json").read_text())["rows"]))


def clif(work: Path, a) -> None:
    source = DATA / "clif-mimic-iv-demo" / "2.1"
    ehrkit("timeline", "tokenize", str(source), "--split", "--fit", "vocab.json", "-q",
           "-o", "timelines.parquet", cwd=work)
    ehrkit("pretrain", "timelines.parquet", "--objective", "clm", "--vocab", "vocab.json",
           "--chunk", "512", "--batch-size", "8", "--lr", "2e-3", "--epochs", "20",
           "--max-minutes", str(a.minutes), "--eval-every", "50", "--device", a.device, "-q",
           "-o", "clif-clm", cwd=work)
    ehrkit("timeline", "tokenize", str(source), "--split", "--vocab", "vocab.json", "--cut", "24h",
           "-q", "-o", "first24h.parquet", cwd=work)
    for outcome, by in (("same_admission_death", None), ("icu_admission", "icu_admission_24h")):
        ehrkit("finetune", "first24h.parquet", "--init", "clif-clm", "--label-field", outcome,
               "--max-length", "512", "--batch-size", "8", "--lr", "2e-4", "--epochs", "5",
               "--class-weights", "--eval-every", "25", "--device", a.device, "-q",
               "-o", f"clif-{outcome}", cwd=work)
        extra = ["--by", by] if by else []
        ehrkit("evaluate", f"clif-{outcome}/predictions.parquet", "--patient-field", "patient_id",
               *extra, "-q", "-o", f"clif-{outcome}.metrics.jsonl", cwd=work)
        found = metrics(work / f"clif-{outcome}.metrics.jsonl", f"{by}=0" if by else None)
        show(f"CLIF demo, first 24 h -> {outcome}" + (f" (stays with {by} = 0)" if by else ""),
             found, ["auroc", "auprc_trapezoid", "prevalence"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("ner", "mts", "clif", "multitask"), action="append")
    parser.add_argument("--preset", default="small", help="BERT size for NER and MTS-Dialog")
    parser.add_argument("--minutes", type=float, default=4.0, help="cap per training run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workdir", help="keep the runs here (default: a temporary directory)")
    a = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA}: the shared data is not here; nothing to run")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name in a.only or ("ner", "mts", "clif", "multitask"):
            {"ner": ner, "mts": mts, "clif": clif, "multitask": multitask}[name](work, a)


if __name__ == "__main__":
    main()
