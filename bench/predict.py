"""Benchmark: `ehrkit predict` against transformers' `pipeline("text-classification")` on one
BERT classifier and the same notes, in one run.

Data: `ehrkit synth notes -n N --seed S`, the raw note text. Note lengths vary widely: nursing
notes of a few dozen tokens, discharge summaries past 512. The records carry no `label` field,
so ehrkit computes no metrics (the pipeline does not either): both sides only score.

Model: a binary text classifier as `ehrkit finetune --task binary` saves one, built from config
(nothing downloaded): a BERT of `--preset` size (default small) with a WordPiece vocabulary learnt
on the notes by ehrkit's trainer, its weights drawn at random (`--seed`) with std 0.2 so that
the scores spread over (0, 1) instead of all sitting near one value, saved as
`BertForSequenceClassification` with one output, problem_type multi_label_classification (so
the pipeline applies a sigmoid) and id2label {0: "1"}, the tokenizer files and `finetune.json`
(kind text, task binary, `--max-length`). Both sides load it from that directory (SDPA
attention), truncate each note to its first `--max-length` tokens ([CLS] ... [SEP]) and score
P(positive) = sigmoid(logit), under torch.inference_mode, fp32 on a CPU, bf16 autocast on a GPU.

ehrkit: `run_predict`, the library call behind `ehrkit predict NOTES -m MODEL --batch-size B
--max-length L -o predictions.parquet`: it reads the notes, tokenizes each chunk of 2,048 at
once, sorts them by length, pads each batch of B to its own longest note, and writes prediction
records (the input fields but `text`, then `score`). Timed: its summary's seconds (reading,
tokenizing, the model, writing; the model load is not counted on either side). `--batch-tokens
T` adds its budget of padded tokens per batch (rows still at most B).

Baseline: what the transformers docs show, `pipeline("text-classification", model=...,
tokenizer=..., device=...)` called once on the list of texts in input order with
`batch_size=B, truncation=True, max_length=L, function_to_apply="sigmoid", top_k=None`: it
tokenizes note by note and pads each batch of B, in input order, to its longest note; the
scores are kept in memory (no writing). On a GPU the call runs under bf16 autocast, as ehrkit's
model does. Timed: the call.

Prints both sides' rows/s, tokens/s (real tokens) and padding, the ratio (target >= 2x) and the
largest absolute difference between the two sides' scores of the same notes (target <= 1e-4 in
fp32; bf16 on a GPU differs more, by design of bf16). With `--repeats N` both run N times,
alternately, and the best run of each is compared (on a shared machine the best is the run
least slowed by other work); each pair's own ratio is printed too.

    python bench/predict.py                       # 1,000 notes, BERT small, length 512, batch 32
    python bench/predict.py --threads 1           # a small CPU machine shared with other work
    python bench/predict.py --preset tiny         # a quick look (under a minute on 2 cores)
    python bench/predict.py --notes 4000 --preset base --device cuda
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import ehrkit, torch_setup

# Weights drawn with std 0.2, not transformers' 0.02: a fresh BERT of std 0.02 gives every note
# nearly the same score (all within 0.002 of one value), which would make the comparison of the
# scores say little; with 0.2 they spread over about 0.05..0.95, as a trained model's do.
INIT_STD = 0.2


def make_notes(workdir: Path, count: int, seed: int) -> Path:
    raw = workdir / f"notes-{count}-{seed}.parquet"
    if not raw.exists():
        subprocess.run(ehrkit("synth", "notes", "-n", str(count), "--seed", str(seed), "-o",
                              str(raw), "-q"), check=True)
    return raw


def make_model(workdir: Path, notes: Path, preset: str, vocab_size: int, max_length: int,
               seed: int) -> Path:
    """A binary text classifier directory as `ehrkit finetune --task binary` leaves one."""
    import pyarrow.parquet as pq
    import torch
    from transformers import BertForSequenceClassification

    from ehrkit.finetune.spec import Spec
    from ehrkit.models.presets import bert_config
    from ehrkit.train.wordpiece import train_vocabulary

    directory = workdir / f"classifier-{preset}-{vocab_size}-{max_length}-{seed}"
    if (directory / "finetune.json").exists():
        return directory
    texts = pq.read_table(notes, columns=["text"])["text"].to_pylist()
    tokenizer = train_vocabulary(texts, vocab_size, 512)
    config = bert_config(preset, -(-len(tokenizer) // 64) * 64, max_length,
                         pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa",
                         num_labels=1, problem_type="multi_label_classification",
                         id2label={0: "1"}, label2id={"1": 0}, initializer_range=INIT_STD)
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    Spec(kind="text", task="binary", max_length=max_length,
         targets=[{"name": "label", "field": "label", "index": None, "task": "binary",
                   "classes": [0, 1], "positive": 1}]).save(directory)
    return directory


def run_ehrkit(notes: Path, model: Path, out: Path, cfg: dict) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    from ehrkit.finetune.predict import PredictRequest, run_predict

    summary = run_predict(PredictRequest([str(notes)], str(model), str(out),
                                         batch_size=cfg["batch"], batch_tokens=cfg["batch_tokens"],
                                         max_length=cfg["max_length"], device=cfg["device"]))
    table = pq.read_table(out, columns=["row_id", "score"])
    return {"seconds": summary["seconds"], "rows": summary["rows"], "tokens": summary["tokens"],
            "truncated": summary["truncated"], "row_id": table["row_id"].to_pylist(),
            "scores": np.asarray(table["score"].to_numpy(), dtype=np.float64)}


def load_pipeline(model: Path, device: str):
    from transformers import AutoTokenizer, BertForSequenceClassification, pipeline

    tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    classifier = BertForSequenceClassification.from_pretrained(
        model, local_files_only=True, use_safetensors=True, attn_implementation="sdpa")
    return pipeline("text-classification", model=classifier.float().eval(), tokenizer=tokenizer,
                    device=device)


def run_baseline(texts: list[str], classifier, cfg: dict) -> dict:
    """The pipeline on the texts in input order, B at a time."""
    import numpy as np
    import torch

    device = cfg["device"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else \
        torch.autocast("cpu", enabled=False)
    _sync(device)
    start = time.perf_counter()
    with autocast:
        results = classifier(texts, batch_size=cfg["batch"], truncation=True,
                             max_length=cfg["max_length"], function_to_apply="sigmoid",
                             top_k=None)
    _sync(device)
    seconds = time.perf_counter() - start
    # top_k=None: one list of {label, score} per text, one entry per output (here label "1").
    scores = [next(d["score"] for d in result if d["label"] == "1") for result in results]
    return {"seconds": seconds, "rows": len(texts), "scores": np.asarray(scores, np.float64)}


def padded_tokens(lengths, batch: int, batch_tokens: int | None, chunk: int = 2048) -> tuple:
    """Padded tokens of each side's batches: ehrkit's plan per chunk of 2,048 rows (sorted by
    length), and the pipeline's batches of B in input order."""
    import numpy as np

    from ehrkit.embed.batching import Budget, plan

    lengths = np.asarray(lengths, dtype=np.int64)
    budget = Budget.of(batch_tokens, batch)
    ours = sum(len(rows) * int(part[rows].max())
               for start in range(0, len(lengths), chunk)
               for part in [lengths[start:start + chunk]] for rows in plan(part, budget))
    theirs = sum(len(b) * int(b.max()) for b in (lengths[i:i + batch]
                                                 for i in range(0, len(lengths), batch)))
    return ours, theirs


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def report(ours: dict, theirs: dict, tokens: int, padded: tuple) -> None:
    import numpy as np

    print(f"{'':38} {'seconds':>8} {'rows/s':>8} {'tokens/s':>10} {'padded tokens':>14} "
          f"{'padding':>8}")
    for name, r, pad in (("ehrkit predict (length-sorted)", ours, padded[0]),
                         ("transformers pipeline (input order)", theirs, padded[1])):
        print(f"{name:38} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>8.1f} "
              f"{tokens / r['seconds']:>10,.0f} {pad:>14,} {1 - tokens / pad:>8.1%}")
    ratio = (ours["rows"] / ours["seconds"]) / (theirs["rows"] / theirs["seconds"])
    diff = float(np.abs(ours["scores"] - theirs["scores"]).max())
    print(f"ratio: ehrkit {ratio:.2f}x the pipeline's rows/s (target >= 2x)")
    print(f"max abs difference of the scores: {diff:.2e} (target <= 1e-4 in fp32)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1000, help="synthetic notes")
    parser.add_argument("--data-seed", type=int, default=1, help="seed of the synthetic notes")
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "base"])
    parser.add_argument("--vocab-size", type=int, default=8000, help="largest vocabulary learnt")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32, help="notes per batch, both sides")
    parser.add_argument("--batch-tokens", type=int, default=None,
                        help="ehrkit only: padded tokens per batch as well (default: none, "
                             "batches of exactly B notes as the pipeline's)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3,
                        help="run both sides N times, alternately, and compare the best runs")
    parser.add_argument("--seed", type=int, default=0, help="model initialisation seed")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads, both sides (default: torch's). On a small machine "
                             "shared with other work, 1 avoids threads waiting on each other")
    parser.add_argument("--dir", default=None, help="where to put the data (default: a temp dir)")
    args = parser.parse_args()
    import numpy as np
    import pyarrow.parquet as pq

    device, workdir = torch_setup(args, "predict")
    notes = make_notes(workdir, args.notes, args.data_seed)
    model = make_model(workdir, notes, args.preset, args.vocab_size, args.max_length, args.seed)
    cfg = {"batch": args.batch_size, "batch_tokens": args.batch_tokens,
           "max_length": args.max_length, "device": device}
    table = pq.read_table(notes, columns=["row_id", "text"])
    texts, row_ids = table["text"].to_pylist(), table["row_id"].to_pylist()
    classifier = load_pipeline(model, device)
    params = sum(p.numel() for p in classifier.model.parameters())
    run_baseline(texts[:64], classifier, cfg)  # warm-up: first calls are slow, on both sides
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(run_ehrkit(notes, model, workdir / "predictions.parquet", cfg))
        theirs.append(run_baseline(texts, classifier, cfg))
    if ours[0]["row_id"] != row_ids:
        print("warning: ehrkit's prediction records are not in input order", file=sys.stderr)
    lengths = [len(ids) for ids in classifier.tokenizer(texts)["input_ids"]]
    kept = np.minimum(lengths, args.max_length)
    truncated = int((np.asarray(lengths) > args.max_length).sum())
    print(f"data: {len(texts):,} notes of {np.percentile(lengths, 10):.0f}/"
          f"{np.median(lengths):.0f}/{np.percentile(lengths, 90):.0f}/{max(lengths)} tokens "
          f"(p10/median/p90/max); {truncated:,} truncated to {args.max_length} "
          f"(ehrkit: {ours[0]['truncated']:,}); {int(kept.sum()):,} tokens scored "
          f"(ehrkit: {ours[0]['tokens']:,})")
    scores = ours[0]["scores"]
    print(f"model: BERT {args.preset} binary classifier, {params:,} parameters, batch "
          f"{args.batch_size}" + (f" (ehrkit: at most {args.batch_tokens:,} padded tokens)"
                                  if args.batch_tokens else "")
          + f", max length {args.max_length}; scores {scores.min():.3f}..{scores.max():.3f}")
    if args.repeats > 1:
        for name, runs in (("ehrkit", ours), ("pipeline", theirs)):
            seconds = ", ".join(f"{r['seconds']:.2f}" for r in runs)
            print(f"runs, seconds: {name} {seconds}")
        pairs = ", ".join(f"{b['seconds'] / a['seconds']:.2f}x" for a, b in zip(ours, theirs))
        print(f"ratio of each pair of runs: {pairs}; the best runs:")
    report(_best(ours), _best(theirs), int(kept.sum()),
           padded_tokens(kept, args.batch_size, args.batch_tokens))
    print(f"data in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
