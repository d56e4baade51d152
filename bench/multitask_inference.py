"""Benchmark: K heads on one encoder pass (`ehrkit predict` on a multitask model) against K
single-task models run one after another on the same notes, in one run.

Model: a BERT of `--preset` size (default small) built from config (nothing downloaded) with a
WordPiece vocabulary learnt on the texts by ehrkit's trainer, then trained for `--train-steps`
round-robin steps by the real command, `ehrkit multitask`, with `--heads K` (default 4) heads on
`ehrkit synth ner` sentences: a token head `ner` (Disease/Drug/Dose, BIO) and K-1 [CLS] heads on
the same sentences' text, cycling through binary `drug` (names a drug?), regression `entities`
(how many), multilabel `kinds` (which entity types) and multiclass `first` (the first entity's
type, or none); past five heads the cycle repeats under new names (`drug2`...). All heads read one
text, so `predict` runs the encoder once per note for all of them. The K single-task models are
that run split in K: each directory holds the SAME encoder files (hard links) and one head
(multitask.json and heads.safetensors keep one task), so their outputs must equal the shared
pass's.

Data: `ehrkit synth notes -n N --seed S`, the raw note text: nursing notes of a few dozen tokens
to discharge summaries past 512, so notes run in windows of `--max-length` tokens (the NER head
reads every window, [CLS] heads the first; a [CLS]-only model still encodes every window, as
`ehrkit predict` does today: the "tokens encoded" column shows it).

Timed, in one process, interleaved: `run_predict`, the library call behind `ehrkit predict NOTES
-m MODEL -o predictions.parquet`, (a) once on the multitask model (all K heads), (b) on each
single-task model in turn. A side's time is the sum of its summaries' seconds (reading,
tokenizing, the encoder, the heads, writing; the model load is not counted on either side);
the wall time with the loads is printed beside it. With `--repeats N` (default 3) both sides run
N times, alternately, and the best runs are compared: the shared pass's best run against the sum
of each single model's best run (on a shared machine the best is the run least slowed by other
work); each pair's own ratio is printed too.

Prints both sides' rows/s, the ratio time(b) / time(a) (target: at least 0.8 x K) and, per
head, the largest absolute difference between the shared pass's scores and its single model's
(target <= 1e-6 x max(1, |score|): the two sides batch rows differently, which moves fp32 sums
in the last bits) or whether the predicted entity spans are identical; exits 1 when any head's
outputs differ. With `--preset tiny` the encoder is so cheap that the per-run costs (reading,
tokenizing, NER decoding, writing) weigh more and the ratio is lower.

    python bench/multitask_inference.py                  # 1,000 notes, BERT small, K = 4
    python bench/multitask_inference.py --threads 1      # a small CPU machine shared with others
    python bench/multitask_inference.py --quick          # a smoke check (under a minute)
    python bench/multitask_inference.py --heads 6 --preset base --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import ehrkit, torch_setup

# The [CLS] heads, in the order they are added: (label field, task type). All read `text`.
CLS_TASKS = (("drug", "binary"), ("entities", "regression"), ("kinds", "multilabel"),
             ("first", "multiclass"))
ENTITY_TYPES = ("Disease", "Drug", "Dose")  # `synth ner`'s; multilabel: one 0/1 per type
# A score of the shared pass may differ from its single model's by 1e-6 x max(1, |score|): the
# two batch the rows differently (a [CLS]-only pass cuts other windows), and fp32 sums over a
# different padded length differ in the last bits, which scale with the score (regression).
TOLERANCE = 1e-6


# ----------------------------------------------------------------------------- data


def make_sentences(workdir: Path, count: int, seed: int) -> Path:
    """`synth ner` sentences with a label per [CLS] task, derived from the gold entities."""
    path = workdir / f"sentences-{count}-{seed}.jsonl"
    if path.exists():
        return path
    raw = workdir / f"ner-{count}-{seed}.jsonl"
    subprocess.run(ehrkit("synth", "ner", "-n", str(count), "--seed", str(seed), "-o", str(raw),
                          "-q"), check=True)
    with open(raw) as lines, open(path, "w") as out:
        for line in lines:
            record = json.loads(line)
            kinds = [span["label"] for span in record["spans"]]
            record.update(drug=int("Drug" in kinds), entities=float(len(kinds)),
                          kinds=[int(k in kinds) for k in ENTITY_TYPES],
                          first=kinds[0] if kinds else "none")
            out.write(json.dumps(record) + "\n")
    return path


def make_notes(workdir: Path, count: int, seed: int) -> Path:
    path = workdir / f"notes-{count}-{seed}.parquet"
    if not path.exists():
        subprocess.run(ehrkit("synth", "notes", "-n", str(count), "--seed", str(seed), "-o",
                              str(path), "-q"), check=True)
    return path


def head_tasks(sentences: Path, heads: int) -> list[tuple[str, str]]:
    """(name, `--task` string) of the NER head and heads-1 [CLS] heads on the sentences."""
    tasks = [("ner", f"ner=ner:{sentences}")]
    for k in range(heads - 1):
        label, kind = CLS_TASKS[k % len(CLS_TASKS)]
        name = label + (str(k // len(CLS_TASKS) + 1) if k >= len(CLS_TASKS) else "")
        tasks.append((name, f"{name}={kind}:{sentences} label={label}"))
    return tasks


# ----------------------------------------------------------------------------- models


def make_bert(workdir: Path, corpus: tuple[Path, Path], preset: str, vocab_size: int,
              seed: int) -> Path:
    """A BERT directory as `ehrkit pretrain --objective mlm --from-scratch` leaves one, its
    vocabulary learnt on the notes and the training sentences."""
    import pyarrow.parquet as pq
    import torch
    from transformers import BertForMaskedLM

    from ehrkit.models.presets import bert_config
    from ehrkit.train.wordpiece import train_vocabulary

    notes, sentences = corpus
    directory = workdir / f"bert-{preset}-{vocab_size}-{seed}-{notes.stem}-{sentences.stem}"
    if (directory / "model.safetensors").exists():
        return directory
    texts = pq.read_table(notes, columns=["text"])["text"].to_pylist()
    texts += [json.loads(line)["text"] for line in open(sentences)]
    tokenizer = train_vocabulary(texts, vocab_size, 512)
    config = bert_config(preset, -(-len(tokenizer) // 64) * 64, 512,
                         pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa")
    torch.manual_seed(seed)
    BertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def train_multitask(workdir: Path, bert: Path, tasks: list[tuple[str, str]], steps: int,
                    seed: int, device: str) -> Path:
    """The real `ehrkit multitask` run, a few steps: enough for heads that find entities."""
    directory = workdir / f"multitask-{bert.name}-{len(tasks)}-{steps}"
    if (directory / "heads.safetensors").exists():
        return directory
    args = [arg for _, spec in tasks for arg in ("--task", spec)]
    subprocess.run(ehrkit("multitask", "--init", str(bert), *args, "--max-steps", str(steps),
                          "--batch-size", "16", "--lr", "1e-3", "--seed", str(seed),
                          "--device", device, "-q", "-o", str(directory)),
                   check=True, stdout=subprocess.DEVNULL)
    return directory


def split_model(multi: Path) -> dict[str, Path]:
    """One single-task directory per head: the multitask model's encoder and tokenizer files
    (hard links, so the encoders are byte-identical) with that head alone."""
    import shutil

    from safetensors.torch import load_file, save_file

    from ehrkit.io import write_json_artifact
    from ehrkit.multitask import model as mt

    document = json.loads((multi / mt.FILENAME).read_text())
    tensors = load_file(str(multi / mt.HEADS))
    shared = [p for p in multi.iterdir() if p.name in ("config.json", "model.safetensors",
                                                       "vocab.txt")
              or p.name.startswith(("tokenizer", "special_tokens"))]
    out = {}
    for task in document["tasks"]:
        name = task["name"]
        directory = multi.parent / f"{multi.name}-single-{name}"
        directory.mkdir(exist_ok=True)
        for path in shared:
            target = directory / path.name
            target.unlink(missing_ok=True)
            try:
                os.link(path, target)
            except OSError:  # another file system, or no hard links: a copy
                shutil.copy2(path, target)
        # Written afresh every run: the heads compared are the multitask model's, never stale.
        save_file({k: v for k, v in tensors.items() if k.startswith(f"{name}.")},
                  str(directory / mt.HEADS))
        write_json_artifact(directory / mt.FILENAME, {**document, "tasks": [task]}, indent=1)
        out[name] = directory
    return out


# ----------------------------------------------------------------------------- timing


def run_once(notes: Path, model: Path, out: Path, cfg: dict) -> dict:
    """`run_predict` on one model: its summary's seconds (no load) and the wall time (load)."""
    from ehrkit.finetune.predict import PredictRequest, run_predict

    start = time.perf_counter()
    summary = run_predict(PredictRequest([str(notes)], str(model), str(out),
                                         batch_size=cfg["batch"], batch_tokens=cfg["batch_tokens"],
                                         max_length=cfg["max_length"], device=cfg["device"]))
    return {"seconds": summary["seconds"], "wall": time.perf_counter() - start,
            "rows": summary["rows"], "tokens": summary["tokens"]}


def run_singles(notes: Path, singles: dict[str, Path], workdir: Path, cfg: dict) -> dict:
    """Each single-task model in turn: {name: its run}."""
    return {name: run_once(notes, model, workdir / f"single-{name}.parquet", cfg)
            for name, model in singles.items()}


def _total(runs: dict) -> dict:
    """A side of single-task models as one run: the sums of their times."""
    return {"seconds": sum(r["seconds"] for r in runs.values()),
            "wall": sum(r["wall"] for r in runs.values()),
            "rows": next(iter(runs.values()))["rows"]}


# ----------------------------------------------------------------------------- checking


def compare(multi_out: Path, single_outs: dict[str, Path]) -> dict[str, dict]:
    """Per head: its columns in the shared pass against its single model's. Float columns
    (scores): the max abs difference; other columns (entity spans): rows that differ."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    multi = pq.read_table(multi_out)
    found = {}
    for name, path in single_outs.items():
        single = pq.read_table(path)
        columns = [c for c in single.column_names if c.startswith(f"{name}_")]
        theirs = [c for c in multi.column_names if c.startswith(f"{name}_")]
        result = {"columns": columns, "same_columns": columns == theirs, "max_diff": 0.0,
                  "scaled": 0.0, "rows_differ": 0, "entities": None}
        for column in (c for c in columns if c in theirs):
            kind = single.schema.field(column).type
            a, b = multi[column].to_pylist(), single[column].to_pylist()
            if pa.types.is_floating(kind) or (pa.types.is_list(kind) and
                                              pa.types.is_floating(kind.value_type)):
                gap, scaled = _gaps(_floats(a), _floats(b))
                result["max_diff"] = max(result["max_diff"], gap)
                result["scaled"] = max(result["scaled"], scaled)
            else:
                result["rows_differ"] += sum(p != q for p, q in zip(a, b)) + abs(len(a) - len(b))
                result["entities"] = sum(len(p or []) for p in a)
        result["ok"] = (result["same_columns"] and result["scaled"] <= TOLERANCE
                        and result["rows_differ"] == 0)
        found[name] = result
    return found


def _gaps(x, y) -> tuple[float, float]:
    """The max abs difference of two score arrays, and the max of it / max(1, |score|); both
    infinite when their shapes or missing scores differ."""
    import numpy as np

    if x.shape != y.shape or (np.isnan(x) != np.isnan(y)).any():
        return float("inf"), float("inf")
    gap = np.abs(x - y)
    return (float(np.nanmax(gap, initial=0.0)),
            float(np.nanmax(gap / np.maximum(1.0, np.abs(y)), initial=0.0)))


def _floats(values: list):
    """A float column (one score or a list per row) as a 2-D array, nulls as NaN."""
    import numpy as np

    rows = [v if isinstance(v, list) else [v] for v in values]
    width = max((len(r) for r in rows if r is not None), default=1)
    return np.array([[np.nan if x is None else x for x in r] if r else [np.nan] * width
                     for r in rows], dtype=np.float64)


# ----------------------------------------------------------------------------- report


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def report(multi_runs: list[dict], single_runs: list[dict], heads: int, checks: dict) -> bool:
    # Each single model's best run, summed: every model run is a measurement of its own, so
    # this is the side's least disturbed time (and never more than its best repeat's sum).
    best_single = {name: _best([runs[name] for runs in single_runs]) for name in single_runs[0]}
    ours, theirs = _best(multi_runs), _total(best_single)
    if len(multi_runs) > 1:
        print("runs, seconds: one pass " + ", ".join(f"{r['seconds']:.2f}" for r in multi_runs))
        print("runs, seconds: singles " + ", ".join(f"{_total(r)['seconds']:.2f}"
                                                    for r in single_runs))
        pairs = ", ".join(f"{_total(b)['seconds'] / a['seconds']:.2f}x"
                          for a, b in zip(multi_runs, single_runs))
        print(f"ratio of each pair of runs: {pairs}; the best runs (singles: each model's):")
    print(f"{'':44} {'seconds':>8} {'rows/s':>8} {'with load':>10}")
    for name, r in ((f"(a) one pass, {heads} heads (multitask model)", ours),
                    (f"(b) {heads} single-task models in turn", theirs)):
        print(f"{name:44} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>8.1f} "
              f"{r['wall']:>9.2f}s")
    for name, r in best_single.items():
        print(f"    {name:40} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>8.1f} "
              f"{r['wall']:>9.2f}s  {r['tokens']:,} tokens encoded")
    ratio, target = theirs["seconds"] / ours["seconds"], 0.8 * heads
    wall = theirs["wall"] / ours["wall"]
    print(f"ratio: time(b) / time(a) = {ratio:.2f} (target >= 0.8 x {heads} = {target:.1f}: "
          f"{'met' if ratio >= target else 'NOT met'}); with the model loads {wall:.2f}")
    for name, c in checks.items():
        found = (f"{c['rows_differ']} rows differ, {c['entities']:,} entities"
                 if c["entities"] is not None else
                 f"max abs diff {c['max_diff']:.2e} (scaled {c['scaled']:.1e})")
        print(f"head {name:10} {', '.join(c['columns']):28} {found}: "
              f"{'identical' if c['ok'] else 'DIFFERENT'}")
    ok = all(c["ok"] for c in checks.values())
    print(f"outputs: {'every head equals its single model' if ok else 'some heads DIFFER'} "
          f"(scores within {TOLERANCE:g} x max(1, |score|), spans exactly)")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="synthetic notes to predict")
    parser.add_argument("--heads", type=int, default=4,
                        help="K: one NER head and K-1 [CLS] heads (at least 2)")
    parser.add_argument("--data-seed", type=int, default=1, help="seed of the synthetic data")
    parser.add_argument("--sentences", type=int, default=1000, help="NER sentences to train on")
    parser.add_argument("--train-steps", type=int, default=60,
                        help="`ehrkit multitask` steps (round-robin: one head's batch each)")
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "base"])
    parser.add_argument("--vocab-size", type=int, default=8000, help="largest vocabulary learnt")
    parser.add_argument("--max-length", type=int, default=None,
                        help="tokens per window at prediction (default: as trained, 512)")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per batch, both sides")
    parser.add_argument("--batch-tokens", type=int, default=None,
                        help="padded tokens per batch, both sides (default: ehrkit's)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3,
                        help="run both sides N times, alternately, and compare the best runs")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke check: --preset tiny, --n 200, --sentences 300, "
                             "--train-steps 20, --repeats 1")
    parser.add_argument("--seed", type=int, default=0, help="model initialisation seed")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads, both sides (default: torch's). On a small machine "
                             "shared with other work, 1 avoids threads waiting on each other")
    parser.add_argument("--dir", default=None, help="where to put the data (default: a temp dir)")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.n, args.sentences, args.train_steps, args.repeats = \
            "tiny", 200, 300, 20, 1
    if args.heads < 2:
        parser.error("--heads: at least 2 (one head is not multitask)")
    import pyarrow.parquet as pq

    device, workdir = torch_setup(args, "multitask")
    sentences = make_sentences(workdir, args.sentences, args.data_seed)
    notes = make_notes(workdir, args.n, args.data_seed)
    bert = make_bert(workdir, (notes, sentences), args.preset, args.vocab_size, args.seed)
    tasks = head_tasks(sentences, args.heads)
    multi = train_multitask(workdir, bert, tasks, args.train_steps, args.seed, device)
    singles = split_model(multi)
    cfg = {"batch": args.batch_size, "batch_tokens": args.batch_tokens,
           "max_length": args.max_length, "device": device}
    warm = workdir / "warm-up.parquet"
    pq.write_table(pq.read_table(notes).slice(0, 32), warm)
    run_once(warm, multi, workdir / "warm-up.pred.parquet", cfg)  # first calls are slow
    multi_runs, single_runs = [], []
    for _ in range(args.repeats):
        multi_runs.append(run_once(notes, multi, workdir / "multi.parquet", cfg))
        single_runs.append(run_singles(notes, singles, workdir, cfg))
    print(f"data: {multi_runs[0]['rows']:,} notes; {multi_runs[0]['tokens']:,} tokens encoded by the "
          f"shared pass; model: BERT {args.preset}, {args.heads} heads "
          f"({', '.join(name for name, _ in tasks)}), {args.train_steps} training steps")
    checks = compare(workdir / "multi.parquet",
                     {name: workdir / f"single-{name}.parquet" for name in singles})
    ok = report(multi_runs, single_runs, args.heads, checks)
    print(f"data in {workdir}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
