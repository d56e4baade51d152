"""Benchmark: `ehrkit pretrain --objective mlm` against a plain transformers `Trainer`, in one run.

Data: synthetic notes (`ehrkit synth notes -n N --seed S`, then `ehrkit notes clean`, which
adds the `sentences` list), written once to a temp dir and read by both sides. Notes have
sentences of mixed lengths (3 to about 60 words).

ehrkit: `ehrkit pretrain notes.parquet --objective mlm --from-scratch` in a fresh process,
with `--val-fraction 0` (every note trains and nothing is evaluated: the loop would otherwise
validate at the last step inside its timed window). It learns a WordPiece vocabulary, packs the
sentences of all notes into sequences of `--max-length` tokens (RoBERTa's FULL-SENTENCES: a
sequence ends when the next sentence does not fit, so most end a little short of full; that
room is its padding) and trains a BERT of `--preset` size, its prediction head run on the masked
positions only (part of what is measured: the baseline's runs on every position). Its
throughput is the `tokens_per_s` of its JSON summary: non-padding tokens of the trained batches /
seconds of the training loop (from the first step to after the last one, the final checkpoint's
write included).

Baseline: what transformers' `run_mlm.py` does with `--line_by_line` (no grouping), without
`datasets`: each example is ONE sentence, tokenized with [CLS] and [SEP] and truncated to
`--max-length`; `DataCollatorForLanguageModeling(mlm_probability=0.15)` pads each batch to its
longest sentence (dynamic padding) and masks 80/10/10; `Trainer` (AdamW, linear warmup over 10%
of the steps then linear decay, weight decay 0.01, gradient clip 1.0, no evaluation, no saving,
no workers) trains `BertForMaskedLM`, whose head runs over every position. Its throughput:
non-padding tokens of the batches the model trained on (counted in a forward hook on the model,
so batches the dataloader made but did not train on are not counted) / seconds from the
Trainer's `on_train_begin` to its `on_train_end` (its setup before the first step is not
counted, which favours the baseline). ehrkit's useful tokens are its summary's `tokens` (the
useful tokens the loop trained on).

Shared: the tokenizer and the config are loaded from ehrkit's run directory
(`AutoTokenizer.from_pretrained(run)`, `BertConfig.from_pretrained(run)`); the baseline's model
is a fresh `BertForMaskedLM` from that config under the same seed (ehrkit initialises its own
the same way), with SDPA attention on both sides; the same notes, batch size (sequences per
step), learning rate, number of optimizer steps, seed, device and precision (fp32 on a CPU;
bf16 autocast on a GPU). What differs is the point of the comparison: ehrkit's batches are full
`max_length` sequences of packed sentences, the baseline's are single sentences padded to the
longest in the batch. So at the same batch size ehrkit trains on many more useful tokens per
step; tokens/s measures how fast each turns compute into trained-on text.

Prints, for both: steps, wall seconds (ehrkit: the whole command, vocabulary training and
packing included; baseline: tokenization, model build and training), training seconds, useful
tokens, useful tokens/s and padding fraction; then `ratio: ehrkit Nx (target >= 1.5x)`.
With `--repeats N` (default 3) both sides run N times, alternately, and the medians are
compared. `--baseline-group-by-length` gives the baseline Trainer's length-grouped sampler, a
stronger baseline than run_mlm.py's default (much less padding).

On a GPU (torch.cuda.is_available()) it then runs BERT-base at length 512 in bf16 the same way
(ehrkit `--preset base --max-length 512 --device cuda`, the baseline `Trainer(bf16=True)`;
by default 20,000 notes, batch 32, 100 steps) and prints the ratio and the MFU (target >= 40%):
ehrkit's own figure (its last 10 steps, after the warm-up), the same over the whole run, and the
baseline's MFU on its useful tokens at the same FLOPs per token.

The baseline's `Trainer` needs `accelerate` (>= 1.1), which ehrkit does not; nothing is
downloaded by the script.

    python bench/pretrain.py                      # tiny BERT, length 128, batch 16, 100 steps, 3 runs
    python bench/pretrain.py --preset small
    python bench/pretrain.py --no-gpu             # only the CPU part, also where a GPU exists
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ehrkit, measure


# ------------------------------------------------------------------------- data


def make_notes(workdir: Path, count: int, seed: int) -> Path:
    """Synthetic notes, cleaned and split into sentences: notes.parquet in workdir."""
    raw, notes = workdir / f"raw-{count}-{seed}.jsonl", workdir / f"notes-{count}-{seed}.parquet"
    if not notes.exists():
        subprocess.run(ehrkit("synth", "notes", "-n", str(count), "--seed", str(seed), "-o",
                              str(raw), "-q"), check=True)
        subprocess.run(ehrkit("notes", "clean", str(raw), "-o", str(notes), "-q"), check=True)
    return notes


def read_sentences(notes: Path) -> list[str]:
    """Every sentence of every note, in order; a note without a sentence list is one sentence
    (as ehrkit does). Empty ones are dropped (as run_mlm.py --line_by_line does)."""
    import pyarrow.parquet as pq

    table = pq.read_table(notes, columns=["text", "sentences"])
    out: list[str] = []
    for text, sentences in zip(table["text"].to_pylist(), table["sentences"].to_pylist()):
        out.extend(s for s in (sentences if sentences is not None else [text]) if s and s.strip())
    return out


# ------------------------------------------------------------------------- ehrkit


def run_ehrkit(notes: Path, run_dir: Path, cfg: dict) -> dict:
    cmd = ehrkit("pretrain", str(notes), "--objective", "mlm", "--from-scratch",
                 "--vocab-size", str(cfg["vocab_size"]), "--preset", cfg["preset"],
                 "--max-length", str(cfg["max_length"]), "--batch-size", str(cfg["batch_size"]),
                 "--max-steps", str(cfg["steps"]), "--eval-every", str(cfg["steps"] + 1),
                 "--val-fraction", "0", "--lr", str(cfg["lr"]), "--seed", str(cfg["seed"]),
                 "--device", cfg["device"], "-o", str(run_dir), "-q")
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        wall, peak = measure(cmd)
    except subprocess.CalledProcessError as err:
        sys.exit(f"{' '.join(cmd[1:])} failed:\n{err.stderr}")
    info = json.loads((run_dir / "ehrkit.json").read_text())
    result, data = info["result"], info["data"]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
               if line.strip()]
    last = [m for m in metrics if m.get("tokens_per_s")][-1]
    seconds, rate = result["seconds"], result["tokens_per_s"]
    # useful tokens as the loop counted them (older summaries lack the field: rate x seconds)
    tokens = result.get("tokens", rate * seconds)
    slots = result["steps"] * cfg["batch_size"] * cfg["max_length"]
    return {"steps": result["steps"], "wall": wall, "train": seconds, "tokens": tokens,
            "rate": rate, "padding": 1 - tokens / slots, "peak_mb": peak, "data": data,
            "mfu_last": result.get("mfu"), "rate_last": last["tokens_per_s"],
            "loss": result["train_loss"]}


# ------------------------------------------------------------------------- baseline


def run_baseline(notes: Path, run_dir: Path, cfg: dict, workdir: Path) -> dict:
    """transformers' run_mlm.py --line_by_line, without datasets (module docstring)."""
    import torch
    import transformers
    from transformers import (AutoTokenizer, BertConfig, BertForMaskedLM,
                              DataCollatorForLanguageModeling, PrinterCallback, Trainer,
                              TrainerCallback, TrainingArguments)

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(run_dir, local_files_only=True)
    sentences = read_sentences(notes)
    encoded = tokenizer(sentences, truncation=True, max_length=cfg["max_length"],
                        return_special_tokens_mask=True)
    examples = [dict(zip(encoded.keys(), values)) for values in zip(*encoded.values())]

    class Sentences(torch.utils.data.Dataset):
        def __len__(self):
            return len(examples)

        def __getitem__(self, i):
            return examples[i]

    config = BertConfig.from_pretrained(run_dir, local_files_only=True, attn_implementation="sdpa")
    torch.manual_seed(cfg["seed"])
    model = BertForMaskedLM(config)

    counted = {"tokens": 0, "slots": 0, "steps": 0}

    def count(module, args, kwargs):
        if module.training:
            mask = kwargs["attention_mask"]
            counted["tokens"] += int(mask.sum())
            counted["slots"] += mask.numel()
            counted["steps"] += 1

    model.register_forward_pre_hook(count, with_kwargs=True)
    clock: dict = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            _sync(cfg["device"])
            clock["begin"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):
            _sync(cfg["device"])
            clock["end"] = time.perf_counter()

    gpu = cfg["device"] == "cuda"
    args = TrainingArguments(
        output_dir=str(workdir / "baseline-out"), per_device_train_batch_size=cfg["batch_size"],
        learning_rate=cfg["lr"], max_steps=cfg["steps"], weight_decay=0.01,
        warmup_steps=int(0.1 * cfg["steps"]), lr_scheduler_type="linear", max_grad_norm=1.0,
        eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none",
        dataloader_num_workers=0, seed=cfg["seed"], data_seed=cfg["seed"], disable_tqdm=True,
        use_cpu=not gpu, bf16=gpu and cfg["bf16"],
        train_sampling_strategy="group_by_length" if cfg["group_by_length"] else "random")
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15)
    trainer = Trainer(model=model, args=args, train_dataset=Sentences(), data_collator=collator,
                      callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # it prints the final metrics dict on stdout
    output = trainer.train()
    wall = time.perf_counter() - start
    seconds = clock["end"] - clock["begin"]
    del trainer, model
    if gpu:
        torch.cuda.empty_cache()
    return {"steps": counted["steps"], "wall": wall, "train": seconds, "tokens": counted["tokens"],
            "rate": counted["tokens"] / seconds, "padding": 1 - counted["tokens"] / counted["slots"],
            "sentences": len(examples), "lengths": [len(e["input_ids"]) for e in examples],
            "loss": output.training_loss}


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


# ------------------------------------------------------------------------- one comparison


def compare(notes: Path, workdir: Path, cfg: dict, label: str) -> tuple[dict, dict]:
    """Both sides `repeats` times, alternately; returns the median run of each."""
    ours, theirs = [], []
    for i in range(cfg["repeats"]):
        run_dir = workdir / f"run-{label}-{i}"
        ours.append(run_ehrkit(notes, run_dir, cfg))
        theirs.append(run_baseline(notes, workdir / f"run-{label}-0", cfg, workdir))
    if cfg["repeats"] > 1:
        rates = [", ".join(f"{r['rate']:,.0f}" for r in runs) for runs in (ours, theirs)]
        print(f"runs, useful tokens/s: ehrkit {rates[0]}; baseline {rates[1]}")
    return _median(ours), _median(theirs)


def _median(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]


def report(ours: dict, theirs: dict, cfg: dict, target: float) -> float:
    import numpy as np

    data, lengths = ours["data"], np.asarray(theirs["lengths"])
    print(f"data: {data['notes']:,} notes, {theirs['sentences']:,} sentences of "
          f"{np.percentile(lengths, 10):.0f}/{np.median(lengths):.0f}/"
          f"{np.percentile(lengths, 90):.0f}/{lengths.max()} tokens (p10/median/p90/max, with "
          f"[CLS] [SEP]); ehrkit packs them into {data['sequences']:,} sequences, "
          f"fill {data['fill']:.1%}")
    print(f"model: BERT {cfg['preset']}, {data['parameters']:,} parameters, vocabulary "
          f"{data['vocab_size']:,} ({data['embedding_rows']:,} rows), max length "
          f"{cfg['max_length']}, batch {cfg['batch_size']}, {cfg['steps']} steps, lr {cfg['lr']:g}, "
          f"{cfg['device']}{' bf16' if cfg['device'] == 'cuda' and cfg['bf16'] else ' fp32'}")
    head = f"{'':42} {'steps':>5} {'wall s':>7} {'train s':>8} {'useful tokens':>14} " \
           f"{'useful tok/s':>13} {'padding':>8} {'loss':>6}"
    print(head)
    sampler = ", length-grouped" if cfg["group_by_length"] else ""
    for name, r in (("ehrkit pretrain (packed)", ours),
                    (f"baseline Trainer (padded{sampler})", theirs)):
        print(f"{name:42} {r['steps']:>5} {r['wall']:>7.1f} {r['train']:>8.2f} "
              f"{r['tokens']:>14,.0f} {r['rate']:>13,.0f} {r['padding']:>8.1%} {r['loss']:>6.3f}")
    ratio = ours["rate"] / theirs["rate"]
    print(f"ratio: ehrkit {ratio:.1f}x (target >= {target:g}x)")
    return ratio


# ------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=3000, help="synthetic notes")
    parser.add_argument("--data-seed", type=int, default=1, help="seed of the synthetic notes")
    parser.add_argument("--preset", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per step, both sides")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps, both sides")
    parser.add_argument("--vocab-size", type=int, default=8000, help="largest vocabulary learnt")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0, help="training seed, both sides")
    parser.add_argument("--repeats", type=int, default=3,
                        help="run both sides N times, alternately, and compare the medians")
    parser.add_argument("--baseline-group-by-length", action="store_true",
                        help="give the baseline Trainer's length-grouped sampler (less padding)")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU part")
    parser.add_argument("--gpu-notes", type=int, default=20000, help="GPU part: synthetic notes")
    parser.add_argument("--gpu-batch-size", type=int, default=32, help="GPU part: batch size")
    parser.add_argument("--gpu-steps", type=int, default=100, help="GPU part: optimizer steps")
    parser.add_argument("--gpu-vocab-size", type=int, default=30522, help="GPU part: vocabulary")
    parser.add_argument("--dir", default=None, help="where to put the data (default: a temp dir)")
    args = parser.parse_args()
    try:
        import accelerate  # noqa: F401  (transformers' Trainer needs it)
    except ImportError:
        sys.exit("bench/pretrain.py: the baseline's transformers Trainer needs accelerate: "
                 "pip install 'accelerate>=1.1'")
    import torch

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="ehrkit-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    cfg = {"preset": args.preset, "max_length": args.max_length, "batch_size": args.batch_size,
           "steps": args.steps, "vocab_size": args.vocab_size, "lr": args.lr, "seed": args.seed,
           "repeats": args.repeats, "group_by_length": args.baseline_group_by_length,
           "device": "cpu", "bf16": False}
    notes = make_notes(workdir, args.notes, args.data_seed)
    print(f"-- CPU: BERT {args.preset} at length {args.max_length}")
    report(*compare(notes, workdir, cfg, "cpu"), cfg, 1.5)

    if args.no_gpu or not torch.cuda.is_available():
        why = "--no-gpu" if args.no_gpu else "no CUDA device (torch.cuda.is_available() is False)"
        print(f"-- GPU part skipped: {why}")
    else:
        gcfg = {**cfg, "preset": "base", "max_length": 512, "batch_size": args.gpu_batch_size,
                "steps": args.gpu_steps, "vocab_size": args.gpu_vocab_size, "device": "cuda",
                "bf16": True}
        gnotes = make_notes(workdir, args.gpu_notes, args.data_seed)
        print(f"-- GPU ({torch.cuda.get_device_name()}): BERT-base at length 512, bf16")
        ours, theirs = compare(gnotes, workdir, gcfg, "gpu")
        report(ours, theirs, gcfg, 1.5)
        if ours["mfu_last"] is None:
            print("MFU: unknown (ehrkit knows no peak FLOP/s for this GPU)")
        else:
            per_rate = ours["mfu_last"] / ours["rate_last"]  # MFU per useful token/s
            print(f"MFU: ehrkit {ours['mfu_last']:.1%} (its last 10 steps; target >= 40%), "
                  f"{per_rate * ours['rate']:.1%} over the whole run; baseline "
                  f"{per_rate * theirs['rate']:.1%} on its useful tokens (same FLOPs per token)")
    print(f"data in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
