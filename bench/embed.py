"""Benchmark: `ehrkit embed` (length-sorted batches) against plain batching in input order, in one run.

Data: `ehrkit synth notes -n N --seed S`, the raw note text (`--clean` runs `ehrkit notes
clean` first). Note lengths vary widely: nursing notes of a few dozen tokens, discharge
summaries past 512.

Model: a BERT of `--preset` size (default small) built from config with a WordPiece vocabulary
learnt on the notes by ehrkit's trainer, saved as `ehrkit pretrain --objective mlm` saves a run
(BertForMaskedLM + tokenizer files). Both sides load its encoder (`BertModel`, SDPA attention)
from that directory, tokenize with its tokenizer, truncate to `--max-length` and pool the same
way (`--pool`, default cls), under torch.inference_mode, fp32 on a CPU, bf16 autocast on a GPU.

ehrkit: `run_embed`, the library call behind `ehrkit embed NOTES -m MODEL --batch-size B
--max-length L -o emb.parquet`: it reads the notes, sorts each chunk of 2,048 by length, pads
each batch of B to its own longest note, and writes Parquet. Timed: its summary's seconds
(reading, tokenizing, the model, writing; the model load is not counted on either side).

Baseline: the notes in input order, B at a time, each batch tokenized with padding to its
longest note (`tokenizer(batch, truncation=True, max_length=L, padding=True)`), the same model;
the embeddings are kept in memory (no writing). Timed: tokenizing and the model.

Prints both sides' rows/s, tokens/s (real tokens) and padding, the ratio (target >= 2x) and the
largest absolute difference between the two sides' embeddings (target <= 1e-4 in fp32; bf16 on
a GPU differs more, by design of bf16). With `--repeats N` both run N times, alternately, and
the best run of each is compared (on a shared machine the best is the run least slowed by other
work); each pair's own ratio is printed too.

    python bench/embed.py                         # 1,000 notes, BERT small, length 512, batch 32
    python bench/embed.py --threads 1             # a small CPU machine shared with other work
    python bench/embed.py --notes 4000 --preset base --device cuda
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from common import ehrkit, torch_setup


def make_notes(workdir: Path, count: int, seed: int, clean: bool) -> Path:
    raw = workdir / f"notes-{count}-{seed}.parquet"
    if not raw.exists():
        subprocess.run(ehrkit("synth", "notes", "-n", str(count), "--seed", str(seed), "-o",
                              str(raw), "-q"), check=True)
    if not clean:
        return raw
    cleaned = workdir / f"notes-{count}-{seed}.clean.parquet"
    if not cleaned.exists():
        subprocess.run(ehrkit("notes", "clean", str(raw), "--no-segment", "-o", str(cleaned),
                              "-q"), check=True)
    return cleaned


def make_model(workdir: Path, notes: Path, preset: str, vocab_size: int, seed: int) -> Path:
    """A BERT run directory as `ehrkit pretrain --objective mlm --from-scratch` leaves it."""
    import pyarrow.parquet as pq
    import torch
    from transformers import BertForMaskedLM

    from ehrkit.models.presets import bert_config
    from ehrkit.train.wordpiece import train_vocabulary

    directory = workdir / f"bert-{preset}-{vocab_size}"
    if (directory / "model.safetensors").exists():
        return directory
    texts = pq.read_table(notes, columns=["text"])["text"].to_pylist()
    tokenizer = train_vocabulary(texts, vocab_size, 512)
    config = bert_config(preset, -(-len(tokenizer) // 64) * 64, 512,
                         pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa")
    torch.manual_seed(seed)
    BertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def run_ehrkit(notes: Path, model: Path, out: Path, cfg: dict) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    from ehrkit.embed import EmbedRequest, EncoderOptions, run_embed

    summary = run_embed(EmbedRequest([str(notes)], str(model), str(out), batch_size=cfg["batch"],
                                     encoder=EncoderOptions(pool=cfg["pool"],
                                                            max_length=cfg["max_length"]),
                                     device=cfg["device"]))
    vectors = np.asarray(pq.read_table(out)["embedding"].to_pylist(), dtype=np.float32)
    return {"seconds": summary["seconds"], "rows": summary["rows"], "tokens": summary["tokens"],
            "padded": summary["padded_tokens"], "truncated": summary["truncated"],
            "vectors": vectors}


def load_baseline(model: Path, device: str):
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
    encoder = BertModel.from_pretrained(model, local_files_only=True, use_safetensors=True,
                                        add_pooling_layer=False, attn_implementation="sdpa")
    return tokenizer, encoder.float().eval().to(device)


def run_baseline(texts: list[str], tokenizer, encoder, cfg: dict) -> dict:
    """Plain batching: input order, each batch padded to its longest note."""
    import numpy as np
    import torch

    device, batch = cfg["device"], cfg["batch"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else \
        torch.autocast("cpu", enabled=False)
    out, tokens, padded = [], 0, 0
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode(), autocast:
        for i in range(0, len(texts), batch):
            enc = tokenizer(texts[i:i + batch], truncation=True, max_length=cfg["max_length"],
                            padding=True, return_tensors="pt").to(device)
            states = encoder(**enc).last_hidden_state
            mask = enc["attention_mask"]
            tokens, padded = tokens + int(mask.sum()), padded + mask.numel()
            if cfg["pool"] == "mean":
                real = mask[..., None].bool()
                pooled = torch.where(real, states.float(), 0.0).sum(1) / mask.sum(1, keepdim=True)
            else:
                pooled = states[:, 0].float()
            out.append(pooled.cpu().numpy())
    _sync(device)
    return {"seconds": time.perf_counter() - start, "rows": len(texts), "tokens": tokens,
            "padded": padded, "vectors": np.concatenate(out)}


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["seconds"])


def report(ours: dict, theirs: dict) -> None:
    import numpy as np

    print(f"{'':38} {'seconds':>8} {'rows/s':>8} {'tokens/s':>10} {'padded tokens':>14} "
          f"{'padding':>8}")
    for name, r in (("ehrkit embed (length-sorted)", ours), ("baseline (input order)", theirs)):
        print(f"{name:38} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>8.1f} "
              f"{r['tokens'] / r['seconds']:>10,.0f} {r['padded']:>14,} "
              f"{1 - r['tokens'] / r['padded']:>8.1%}")
    ratio = theirs["seconds"] / ours["seconds"]
    diff = float(np.abs(ours["vectors"] - theirs["vectors"]).max())
    print(f"ratio: ehrkit {ratio:.2f}x the baseline's rows/s (target >= 2x)")
    print(f"max abs difference of the embeddings: {diff:.2e} (target <= 1e-4 in fp32)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1000, help="synthetic notes")
    parser.add_argument("--data-seed", type=int, default=1, help="seed of the synthetic notes")
    parser.add_argument("--clean", action="store_true", help="embed `notes clean` text, not raw")
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "base"])
    parser.add_argument("--vocab-size", type=int, default=8000, help="largest vocabulary learnt")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32, help="notes per batch, both sides")
    parser.add_argument("--pool", default="cls", choices=["cls", "mean"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3,
                        help="run both sides N times, alternately, and compare the best runs")
    parser.add_argument("--seed", type=int, default=0, help="model initialisation seed")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads, both sides (default: torch's). On a small machine "
                             "shared with other work, 1 avoids threads waiting on each other")
    parser.add_argument("--dir", default=None, help="where to put the data (default: a temp dir)")
    args = parser.parse_args()
    import pyarrow.parquet as pq

    device, workdir = torch_setup(args, "embed")
    notes = make_notes(workdir, args.notes, args.data_seed, args.clean)
    model = make_model(workdir, notes, args.preset, args.vocab_size, args.seed)
    cfg = {"batch": args.batch_size, "max_length": args.max_length, "pool": args.pool,
           "device": device}
    texts = pq.read_table(notes, columns=["text"])["text"].to_pylist()
    tokenizer, encoder = load_baseline(model, device)
    params = sum(p.numel() for p in encoder.parameters())
    run_baseline(texts[:64], tokenizer, encoder, cfg)  # warm-up: first calls are slow, on both sides
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(run_ehrkit(notes, model, workdir / "emb.parquet", cfg))
        theirs.append(run_baseline(texts, tokenizer, encoder, cfg))
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    import numpy as np

    print(f"data: {len(texts):,} notes ({'cleaned' if args.clean else 'raw'} text) of "
          f"{np.percentile(lengths, 10):.0f}/{np.median(lengths):.0f}/"
          f"{np.percentile(lengths, 90):.0f}/{max(lengths)} tokens (p10/median/p90/max); "
          f"{ours[0]['truncated']:,} truncated to {args.max_length}")
    print(f"model: BERT {args.preset}, {params:,} parameters (encoder), {args.pool} pooling, "
          f"batch {args.batch_size}, max length {args.max_length}")
    if args.repeats > 1:
        for name, runs in (("ehrkit", ours), ("baseline", theirs)):
            seconds = ", ".join(f"{r['seconds']:.2f}" for r in runs)
            print(f"runs, seconds: {name} {seconds}")
        pairs = ", ".join(f"{b['seconds'] / a['seconds']:.2f}x" for a, b in zip(ours, theirs))
        print(f"ratio of each pair of runs: {pairs}; the best runs:")
    report(_best(ours), _best(theirs))
    print(f"data in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
