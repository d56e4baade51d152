"""The causal-LM objective on token timelines: padding stripped from records, packing (fixed
chunks, every token in order, Poisson PAD runs, back-to-back, per-epoch determinism), splits
(held-out rows never trained on), the loss over non-PAD targets, the saved model directory, and
an end-to-end run on synthetic CLIF timelines in which validation loss falls."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from ehrkit.errors import DataError, MissingFieldError, UsageError
from ehrkit.train.clm import ClmTask, build_task, pack, timeline_tokens
from ehrkit.timeline.vocab import SPECIALS, Vocabulary, VocabSettings

CODES = [f"C{i}" for i in range(40)]
TOKENS = SPECIALS + CODES
PAD, START, END, TRUNC = (TOKENS.index(t) for t in ("PAD", "TL_START", "TL_END", "TRUNC"))


@pytest.fixture
def vocab(tmp_path):
    path = tmp_path / "vocab.json"
    Vocabulary(TOKENS, {}, VocabSettings()).save(path)
    return str(path)


def timelines(n: int, seed: int = 0, low: int = 5, high: int = 60) -> list[list[int]]:
    """TL_START, codes, TL_END: no PAD inside, TL_START only at the start."""
    rng = np.random.default_rng(seed)
    first = len(SPECIALS)
    return [[START, *rng.integers(first, len(TOKENS), rng.integers(low, high)).tolist(), END]
            for _ in range(n)]


def table(rows: list[list[int]], **columns) -> pa.Table:
    return pa.table({"input_ids": pa.array(rows, pa.list_(pa.int32())), **columns})


def stream_of(batches: list[dict]) -> list[int]:
    return torch.cat([b["input_ids"].reshape(-1) for b in batches]).tolist()


def split_rows(records: pa.Table) -> list[list[int]]:
    flat, offsets = timeline_tokens(records, "input_ids", PAD)
    return [part.tolist() for part in np.split(flat, offsets[1:-1])]


def pieces(stream: list[int]) -> list[list[int]]:
    """Split a packed stream at TL_START and drop PAD: one piece per timeline."""
    out = []
    for token in stream:
        if token == START:
            out.append([])
        if out and token != PAD:
            out[-1].append(token)
    return out


def pad_runs(stream: list[int]) -> list[int]:
    """Lengths of the PAD runs between TL_END and the next TL_START (zero runs included)."""
    runs, run, after_end = [], 0, False
    for token in stream:
        if token == END:
            after_end, run = True, 0
        elif token == PAD and after_end:
            run += 1
        elif token == START and after_end:
            runs.append(run)
            after_end = False
    return runs


# ---------------------------------------------------------------- records

def test_right_padding_is_stripped_by_length_or_trailing_pad_and_trunc_is_kept():
    rows = [[START, 9, 10, PAD, PAD], [START, 11, TRUNC], [START, PAD, PAD], [], [START, 12, END]]
    assert split_rows(table(rows)) == [[START, 9, 10], [START, 11, TRUNC], [START], [], [START, 12, END]]
    # `length` wins over stripping (and a null length falls back to stripping)
    lengths = pa.array([2, 3, None, 0, 3], pa.int32())
    assert split_rows(table(rows, length=lengths)) == \
        [[START, 9], [START, 11, TRUNC], [START], [], [START, 12, END]]
    # sliced and multi-chunk tables (offsets that do not start at 0)
    both = pa.concat_tables([table(rows), table(rows)]).slice(3, 5)
    assert split_rows(both) == [[], [START, 12, END], [START, 9, 10], [START, 11, TRUNC], [START]]
    assert split_rows(table([[START, 9, END]] * 3).slice(1, 2)) == [[START, 9, END]] * 2


def test_bad_records_and_options_are_refused(vocab):
    rows = table(timelines(20))
    with pytest.raises(UsageError, match="--vocab"):
        build_task(rows, {}, 0, "in.jsonl")
    with pytest.raises(UsageError, match="unknown option"):
        build_task(rows, {"vocab": vocab, "mask_prob": 0.15}, 0, "in.jsonl")
    with pytest.raises(UsageError, match="--pad-between"):
        build_task(rows, {"vocab": vocab, "pad_between": -1}, 0, "in.jsonl")
    with pytest.raises(MissingFieldError, match="'tokens' not found"):
        build_task(rows, {"vocab": vocab, "input_field": "tokens"}, 0, "in.jsonl")
    with pytest.raises(DataError, match="outside the vocabulary"):
        build_task(table([[START, len(TOKENS) + 3, END]]), {"vocab": vocab}, 0, "in.jsonl")
    small = build_task(table(timelines(3)), {"vocab": vocab, "chunk": 64, "val_fraction": 0}, 0, "x")
    with pytest.raises(DataError, match="fewer than one global batch"):
        small.batches(0, 64)


# ---------------------------------------------------------------- packing

def test_packing_cuts_fixed_chunks_with_every_token_in_order(vocab):
    rows = timelines(300)
    task = build_task(table(rows), {"vocab": vocab, "chunk": 64, "val_fraction": 0}, 3, "x")
    batches = task.batches(0, 8)
    assert batches and all(b["input_ids"].shape == (8, 64) for b in batches)
    got = pieces(stream_of(batches))
    # every packed timeline is a whole input timeline (the last one may be cut by the tail)
    index = {tuple(r): i for i, r in enumerate(rows)}
    order = [index[tuple(p)] for p in got[:-1]]
    assert any(r[:len(got[-1])] == got[-1] for r in rows)
    assert len(set(order)) == len(order) and len(order) >= 280  # shuffled, none repeated
    assert order != sorted(order)
    assert task.summary["chunks"] == len(task.batches(0, 1))


def test_pad_runs_are_poisson_with_the_given_mean(vocab):
    rows = timelines(3000, low=2, high=6)
    for mean in (7.0, 3.0):
        task = build_task(table(rows), {"vocab": vocab, "chunk": 128, "pad_between": mean,
                                        "val_fraction": 0}, 0, "x")
        runs = np.array(pad_runs(stream_of(task.batches(0, 4))))
        assert len(runs) > 2500
        assert abs(runs.mean() - mean) < 0.25
        assert abs(runs.var() - mean) < 0.2 * mean  # Poisson: variance = mean
        assert runs.max() > mean + 3
    assert task.summary["pad_tokens"] > 0


def test_zero_pad_between_packs_back_to_back(vocab):
    rows = timelines(200)
    task = build_task(table(rows), {"vocab": vocab, "chunk": 32, "pad_between": 0,
                                    "val_fraction": 0}, 1, "x")
    stream = stream_of(task.batches(0, 2))
    assert PAD not in stream and task.summary["pad_tokens"] == 0
    # the same order as with padding, just without the PAD runs
    generator = torch.Generator().manual_seed(5)
    flat = np.concatenate([np.array(r, np.int32) for r in rows])
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(1))
    packed = pack(flat, offsets, order, 0.0, PAD, generator).tolist()
    assert packed == [t for i in order.tolist() for t in rows[i]]


def test_packing_is_deterministic_per_seed_and_epoch(vocab):
    rows = table(timelines(200))
    options = {"vocab": vocab, "chunk": 64, "val_fraction": 0.1}
    a, b = build_task(rows, options, 7, "x"), build_task(rows, options, 7, "x")
    for epoch in (0, 1, 2):
        assert stream_of(a.batches(epoch, 4)) == stream_of(b.batches(epoch, 4))
    assert stream_of(a.batches(0, 4)) != stream_of(a.batches(1, 4))
    assert stream_of(a.batches(0, 4)) != stream_of(build_task(rows, options, 8, "x").batches(0, 4))
    # validation: packed the same way every time; every token scored once
    val = stream_of(a.eval_batches(4))
    assert val == stream_of(a.eval_batches(4)) == stream_of(b.eval_batches(4))
    assert sum(t != PAD for t in val) == a.summary["val_tokens"]
    # the same weights from the same seed
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


# ---------------------------------------------------------------- splits

def test_held_out_rows_are_never_trained_on_and_tuning_rows_validate(vocab):
    first = len(SPECIALS)
    marker = {"train": first, "tuning": first + 1, "held_out": first + 2}
    rng = np.random.default_rng(0)
    split = rng.choice(["train", "tuning", "held_out"], 300, p=[0.7, 0.1, 0.2]).tolist()
    rows = [[START, marker[s], *rng.integers(first + 3, len(TOKENS), 20).tolist(), END] for s in split]
    task = build_task(table(rows, split=split), {"vocab": vocab, "chunk": 64}, 0, "x")
    assert task.summary["dropped_held_out"] == split.count("held_out")
    assert task.summary["train_timelines"] == split.count("train")
    assert task.summary["validation"] == "tuning split"
    for epoch in range(3):
        seen = set(stream_of(task.batches(epoch, 4)))
        assert marker["train"] in seen and not seen & {marker["tuning"], marker["held_out"]}
    val = set(stream_of(task.eval_batches(4)))
    assert marker["tuning"] in val and not val & {marker["train"], marker["held_out"]}


def test_without_a_tuning_split_a_fraction_of_patients_validates(vocab):
    rows = timelines(400)
    patients = [f"p{i // 2}" for i in range(400)]  # two timelines per patient
    task = build_task(table(rows, patient_id=patients), {"vocab": vocab, "chunk": 64,
                                                         "val_fraction": 0.2}, 0, "x")
    assert 40 <= task.summary["val_timelines"] <= 120
    assert task.summary["val_timelines"] % 2 == 0  # whole patients


# ---------------------------------------------------------------- loss, throughput, saving

def test_loss_sums_over_non_pad_targets_like_transformers(vocab):
    rows = table(timelines(100))
    task = build_task(rows, {"vocab": vocab, "chunk": 64, "val_fraction": 0}, 0, "x")
    batch = task.batches(0, 4)[0]
    ids = batch["input_ids"].long()
    summed, count = task.loss(task.model, batch)
    labels = ids.masked_fill(ids == PAD, -100)
    reference = task.model(input_ids=ids, labels=labels).loss
    assert count.item() == (ids[:, 1:] != PAD).sum().item()
    assert torch.allclose(summed / count, reference, atol=1e-5)
    everything = build_task(rows, {"vocab": vocab, "chunk": 64, "val_fraction": 0,
                                   "loss_on_pad": True}, 0, "x")
    summed, count = everything.loss(everything.model, batch)
    assert count.item() == 4 * 63
    assert torch.allclose(summed / count, everything.model(input_ids=ids, labels=ids).loss, atol=1e-5)
    assert task.tokens(batch) == int((ids != PAD).sum())
    zero, none = task.loss(task.model, {"input_ids": ids[:0]})
    assert zero.item() == 0 and none.item() == 0
    config = task.model.config
    assert task.flops_per_token() == 6 * task.summary["non_embedding_parameters"] + \
        12 * config.num_hidden_layers * config.hidden_size * 64


def test_saved_directory_loads_with_its_vocabulary(vocab, tmp_path):
    from transformers import AutoModelForCausalLM

    task = build_task(table(timelines(50)), {"vocab": vocab, "chunk": 64}, 0, "x")
    assert isinstance(task, ClmTask)
    task.save(tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == \
        (START, END, PAD)
    assert model.config.vocab_size == len(TOKENS) and model.config.max_position_embeddings == 64
    assert (tmp_path / "model" / "vocab.json").read_bytes() == open(vocab, "rb").read()
    assert Vocabulary.load(tmp_path / "model" / "vocab.json").tokens == TOKENS
    ids = torch.tensor([[START, 9, 10]])
    assert torch.allclose(model(input_ids=ids).logits, task.model(input_ids=ids).logits)


# ---------------------------------------------------------------- end to end

@pytest.fixture
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP threads that
    wait on each other make a step up to 100 times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_llama_learns_synthetic_timelines(tmp_path, one_thread):
    import pyarrow.parquet as pq

    from ehrkit import runtime
    from ehrkit.synth.commands import write_clif
    from ehrkit.timeline.commands import SplitConfig, run_tokenize
    from ehrkit.timeline.tokenize import TokenizeConfig
    from ehrkit.train.loop import TrainConfig, train

    write_clif(60, 1, str(tmp_path / "clif"))
    run_tokenize(str(tmp_path / "clif"), str(tmp_path / "t.parquet"), None, kind=None, vocab_in=None,
                 vocab_out=str(tmp_path / "v.json"), settings=VocabSettings(),
                 split=SplitConfig(assign=True), config=TokenizeConfig(), group_size=1000)
    records = pq.read_table(tmp_path / "t.parquet")
    task = build_task(records, {"vocab": str(tmp_path / "v.json"), "chunk": 128}, 0, "t.parquet")
    assert task.summary["dropped_held_out"] > 0 and task.summary["val_timelines"] > 0
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = train(task, TrainConfig(batch_size=4, max_steps=40, lr=2e-3, eval_every=20),
                   runtime.setup("cpu", 0), run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    assert len(val) == 2 and val[1] < val[0] < np.log(len(task.vocab))
    assert result.best_val_loss == val[1] and result.tokens_per_s > 0
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(run_dir / "best")
    assert model.config.vocab_size == len(task.vocab)
    assert (run_dir / "best" / "vocab.json").read_bytes() == (tmp_path / "v.json").read_bytes()
