"""`ehrkit embed`: BERT, Llama and GRU model directories, each pooling checked against the model
run on one row alone (so padding and batch neighbours never change an embedding), trajectory
statistics by hand, record pass-through and order, formats, stdin, errors, and torchrun parts."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ehrkit.cli import run
from ehrkit.embed.batching import Budget, pad_rows, plan
from ehrkit.embed.models import EncoderOptions, load_encoder
from ehrkit.embed.run import ModelExtractor
from ehrkit.runtime import Runtime
from ehrkit.timeline.vocab import SPECIALS, Vocabulary, VocabSettings

WORDS = ["the", "patient", "was", "seen", "today", "and", "discharged", "home", "with", "pain",
         "chest", "no", "acute", "distress", "plan", "follow", "up", "in", "clinic", "."]
BUDGETS = [Budget(tokens=None, rows=1), Budget(tokens=None, rows=3), Budget(tokens=40, rows=None)]
CPU = Runtime(torch.device("cpu"))


# ----------------------------------------------------------------------------- tiny models


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread; on a busy 2-core machine, many times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)



@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    directory = tmp_path_factory.mktemp("bert")
    letters = sorted({c for w in WORDS for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + [f"##{c}" for c in letters]
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(directory)
    BertTokenizerFast.from_pretrained(directory).save_pretrained(directory)
    return directory


TOKENS = SPECIALS + [f"C{i}" for i in range(30)]
PAD = TOKENS.index("PAD")


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    from transformers import LlamaForCausalLM

    from ehrkit.models.presets import llama_config

    directory = tmp_path_factory.mktemp("llama")
    config = llama_config("tiny", len(TOKENS), 48, pad_token_id=PAD, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    Vocabulary(TOKENS, {}, VocabSettings()).save(directory / "vocab.json")
    return directory


@pytest.fixture(scope="module")
def series() -> pa.Table:
    from ehrkit.synth.series import series_batches

    table = pa.Table.from_batches(list(series_batches(12, seed=3)))
    lengths = np.random.default_rng(0).integers(1, 49, table.num_rows).astype(np.int32)
    lengths[0] = 1  # one hour: no jump
    return table.append_column("length", pa.array(lengths))


@pytest.fixture(scope="module")
def gru_dir(tmp_path_factory, series) -> Path:
    from ehrkit.models.gru import GRUClassifier, GRUConfig
    from ehrkit.train.multilabel import series_inputs

    directory = tmp_path_factory.mktemp("gru")
    width = series_inputs(series)[0].shape[2]
    torch.manual_seed(0)
    GRUClassifier(GRUConfig(input_size=width, num_labels=3, hidden_size=8, num_layers=3)
                  ).save_pretrained(directory)
    return directory


def notes(n: int = 9, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, rng.integers(1, 40))) for _ in range(n)]
    return pa.table({"note_id": np.arange(n), "label": rng.integers(0, 2, n), "text": texts})


def timelines(n: int = 9, seed: int = 0) -> pa.Table:
    """2 to 50 tokens (the model has 48 positions), right-padded to 52, with a `length` field."""
    rng = np.random.default_rng(seed)
    rows = [[1, *rng.integers(len(SPECIALS), len(TOKENS), rng.integers(0, 49)).tolist(), 2]
            for _ in range(n)]
    return pa.table({"pid": np.arange(n), "input_ids": pa.array(
        [r + [PAD] * (52 - len(r)) for r in rows], pa.list_(pa.int32())),
        "length": pa.array([len(r) for r in rows], pa.int32())})


def events(row: list[int]) -> list[int]:
    """A timeline up to (not including) its first TL_END or TRUNC: what causal models pool."""
    ends = [i for i, t in enumerate(row) if TOKENS[t] in ("TL_END", "TRUNC")]
    return row[:ends[0]] if ends else row


def embed(directory, table, budget=Budget(), **options):
    extra = {k: options.pop(k) for k in ("all_positions", "trajectory") if k in options}
    extractor = ModelExtractor(load_encoder(directory, EncoderOptions(**options)), CPU, budget, **extra)
    columns, counts = extractor.embed(table, "test")
    return {k: v.to_pylist() for k, v in columns.items()}, counts


def vectors(column) -> np.ndarray:
    return np.asarray(column, dtype=np.float32)


# ----------------------------------------------------------------------------- pooling


def _alone_bert(directory: Path, texts: list[str], layer: int = -1) -> list[torch.Tensor]:
    """Each text's per-position states, the model run on that text alone (no padding)."""
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = BertModel.from_pretrained(directory, add_pooling_layer=False).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=64, return_tensors="pt")
            out.append(model(**enc, output_hidden_states=True).hidden_states[layer][0])
    return out


POOLED = {"cls": lambda s: s[0], "mean": lambda s: s.mean(0), "last": lambda s: s[-1]}


# Each pooling with another batch budget: one row per batch, three rows, or 40 padded tokens.
POOL_BUDGETS = list(zip(["cls", "mean", "last"], BUDGETS))


@pytest.mark.parametrize("pool, budget", POOL_BUDGETS)
def test_bert_pools_like_the_model_on_each_note_alone(bert_dir, pool, budget):
    table = notes()
    got, counts = embed(bert_dir, table, budget, pool=pool)
    alone = _alone_bert(bert_dir, table["text"].to_pylist())
    want = np.stack([POOLED[pool](s).numpy() for s in alone])
    np.testing.assert_allclose(vectors(got["embedding"]), want, atol=1e-5)
    assert counts.tokens == sum(len(s) for s in alone) and counts.padded >= counts.tokens


def test_bert_layer_and_truncation(bert_dir):
    table = notes(4).set_column(2, "text", pa.array([" ".join(["pain"] * 80), "no", "up", "home"]))
    got, counts = embed(bert_dir, table, layer=1, max_length=20)
    assert counts.truncated == 1
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(bert_dir)
    model = BertModel.from_pretrained(bert_dir, add_pooling_layer=False).eval()
    with torch.no_grad():
        enc = tokenizer(table["text"][0].as_py(), truncation=True, max_length=20, return_tensors="pt")
        assert enc["input_ids"].shape[1] == 20
        want = model(**enc, output_hidden_states=True).hidden_states[1][0, 0]
    np.testing.assert_allclose(vectors(got["embedding"])[0], want.numpy(), atol=1e-5)


def test_sentences_are_joined_and_null_text_gives_a_null_embedding(bert_dir):
    table = pa.table({"sentences": [["the patient", "was seen"], None, ["home"]]})
    got, counts = embed(bert_dir, table, pool="mean")
    assert got["embedding"][1] is None and counts.empty == 1
    alone = _alone_bert(bert_dir, ["the patient was seen", "home"])
    np.testing.assert_allclose(vectors([got["embedding"][0], got["embedding"][2]]),
                               np.stack([s.mean(0).numpy() for s in alone]), atol=1e-5)


def _alone_llama(directory: Path, rows: list[list[int]]) -> list[torch.Tensor]:
    from transformers import LlamaModel

    model = LlamaModel.from_pretrained(directory).eval()
    with torch.no_grad():
        return [model(input_ids=torch.tensor([r])).last_hidden_state[0] for r in rows]


@pytest.mark.parametrize("pool, budget", POOL_BUDGETS[::-1])
def test_llama_pools_real_tokens_only(llama_dir, pool, budget):
    table = timelines()
    got, counts = embed(llama_dir, table, budget, pool=pool)
    real = [events(r[:n])[:48] for r, n in zip(table["input_ids"].to_pylist(), table["length"].to_pylist())]
    alone = _alone_llama(llama_dir, real)
    want = np.stack([POOLED[pool](s).numpy() for s in alone])
    np.testing.assert_allclose(vectors(got["embedding"]), want, atol=1e-5)
    assert counts.truncated == sum(len(events(r[:n])) > 48 for r, n in zip(
        table["input_ids"].to_pylist(), table["length"].to_pylist()))


def test_llama_last_is_the_event_before_tl_end_or_trunc(llama_dir):
    """FMs-for-EHRs' representation: the state just before the first TL_END or TRUNC."""
    trunc, end = TOKENS.index("TRUNC"), TOKENS.index("TL_END")
    rows = [[1, 7, 8, 9, end], [1, 7, 8, trunc], [1, 7, 8]]
    got, _ = embed(llama_dir, pa.table({"input_ids": pa.array(rows, pa.list_(pa.int32()))}))
    want = _alone_llama(llama_dir, [[1, 7, 8, 9], [1, 7, 8], [1, 7, 8]])
    np.testing.assert_allclose(vectors(got["embedding"]), np.stack([s[-1].numpy() for s in want]),
                               atol=1e-5)


def test_llama_without_length_strips_trailing_pad_and_empty_rows_are_null(llama_dir):
    table = timelines(4).drop_columns(["length"])
    rows = table["input_ids"].to_pylist()
    table = table.set_column(1, "input_ids", pa.array(rows[:3] + [[PAD, PAD]], pa.list_(pa.int32())))
    got, counts = embed(llama_dir, table)
    real = [events([t for t in r if t != PAD])[:48] for r in rows[:3]]
    want = np.stack([s[-1].numpy() for s in _alone_llama(llama_dir, real)])
    np.testing.assert_allclose(vectors(got["embedding"][:3]), want, atol=1e-5)
    assert got["embedding"][3] is None and counts.empty == 1


def _gru_states(directory: Path, series: pa.Table) -> tuple[torch.Tensor, np.ndarray]:
    from ehrkit.models.gru import GRUClassifier
    from ehrkit.train.multilabel import series_inputs

    inputs, lengths = series_inputs(series)
    with torch.no_grad():
        return GRUClassifier.from_pretrained(directory).eval().hidden_states(
            torch.from_numpy(inputs)), lengths


@pytest.mark.parametrize("budget", BUDGETS)
def test_gru_layers_is_every_layers_state_at_the_last_hour(gru_dir, series, budget):
    got, counts = embed(gru_dir, series, budget)
    states, lengths = _gru_states(gru_dir, series)
    rows = np.arange(len(lengths))
    want = torch.cat([states[i, rows, lengths - 1] for i in range(3)], dim=1)
    np.testing.assert_allclose(vectors(got["embedding"]), want.numpy(), atol=1e-5)
    assert counts.tokens == lengths.sum()


def test_gru_last_layer_and_hour(gru_dir, series):
    states, lengths = _gru_states(gru_dir, series)
    rows = np.arange(len(lengths))
    last, _ = embed(gru_dir, series, pool="last")
    np.testing.assert_allclose(vectors(last["embedding"]), states[-1, rows, lengths - 1], atol=1e-5)
    layer0, _ = embed(gru_dir, series, layer=0)  # one layer asked for: pool last
    np.testing.assert_allclose(vectors(layer0["embedding"]), states[0, rows, lengths - 1], atol=1e-5)
    hour, _ = embed(gru_dir, series, hour=10)
    at = np.minimum(lengths, 10) - 1
    want = torch.cat([states[i, rows, at] for i in range(3)], dim=1)
    np.testing.assert_allclose(vectors(hour["embedding"]), want.numpy(), atol=1e-5)


# ----------------------------------------------------------------------------- positions


def test_all_positions_and_trajectory(llama_dir):
    table = timelines(6, seed=1)
    got, _ = embed(llama_dir, table, Budget(tokens=60), all_positions=True, trajectory=True)
    real = [events(r[:n])[:48] for r, n in zip(table["input_ids"].to_pylist(), table["length"].to_pylist())]
    for i, states in enumerate(_alone_llama(llama_dir, real)):
        kept = np.asarray(got["states"][i])
        assert kept.shape == states.shape
        np.testing.assert_allclose(kept, states.numpy(), atol=2e-2, rtol=2e-3)  # float16
        jumps = np.linalg.norm(np.diff(states.numpy().astype(np.float32), axis=0), axis=1)
        assert got["traj_length"][i] == pytest.approx(jumps.sum(), rel=1e-5)
        assert got["max_jump"][i] == pytest.approx(jumps.max(), rel=1e-5)
        assert got["mean_jump"][i] == pytest.approx(jumps.mean(), rel=1e-5)


def test_states_are_float16_fixed_size_lists(gru_dir, series, tmp_path):
    out = tmp_path / "emb.parquet"
    assert run(["embed", str(_write(series, tmp_path / "s.parquet")), "-m", str(gru_dir),
                "--hour", "5", "--all-positions", "--trajectory", "-o", str(out), "-q"]) == 0
    schema = pq.read_schema(out)
    assert schema.field("states").type == pa.list_(pa.list_(pa.float16(), 24))
    assert schema.field("embedding").type == pa.list_(pa.float32(), 24)
    assert schema.field("traj_length").type == pa.float32()
    table = pq.read_table(out)
    lengths = np.minimum(series["length"].to_numpy(), 5)
    assert [len(s) for s in table["states"].to_pylist()] == lengths.tolist()
    first, second = table.slice(0, 2).to_pylist()
    assert first["traj_length"] == 0 and first["max_jump"] is None and first["mean_jump"] is None
    assert second["traj_length"] > 0 and second["max_jump"] > 0
    np.testing.assert_allclose(second["states"][-1], second["embedding"], atol=1e-2)


# ----------------------------------------------------------------------------- records and CLI


def _write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    return path


def test_records_keep_order_pass_through_and_metadata(bert_dir, tmp_path):
    table = notes(24, seed=2).append_column("sentences", pa.array([["x"]] * 24))
    src = _write(table, tmp_path / "notes.parquet")
    args = ["embed", str(src), "-m", str(bert_dir), "--chunk-rows", "10", "--batch-size", "4", "-q"]
    assert run([*args, "-o", str(tmp_path / "a.parquet")]) == 0
    assert run([*args, "-o", str(tmp_path / "b.jsonl")]) == 0
    parquet = pq.read_table(tmp_path / "a.parquet")
    assert parquet.column_names == ["note_id", "label", "embedding"]
    assert parquet["note_id"].to_pylist() == list(range(24))
    assert parquet["label"].to_pylist() == table["label"].to_pylist()
    meta = json.loads(parquet.schema.metadata[b"ehrkit.embedding"])
    assert meta == {"model": str(bert_dir), "kind": "bert", "pool": "cls", "layer": -1,
                    "dim": 32, "max_length": 64}
    lines = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["note_id"] for r in lines] == list(range(24)) and set(lines[0]) == set(parquet.column_names)
    np.testing.assert_array_equal(vectors([r["embedding"] for r in lines]),
                                  vectors(parquet["embedding"].to_pylist()))


def test_stdin_to_stdout(bert_dir, monkeypatch, tmp_path):
    table = notes(5)
    data = "".join(json.dumps(r) + "\n" for r in table.to_pylist()).encode()
    monkeypatch.setattr(sys, "stdin", SimpleNamespace(buffer=io.BufferedReader(io.BytesIO(data))))
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", SimpleNamespace(buffer=out, flush=lambda: None,
                                                       isatty=lambda: False))
    assert run(["embed", "-m", str(bert_dir), "--pool", "mean", "-q"]) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["note_id"] for r in records] == list(range(5)) and "text" not in records[0]
    want, _ = embed(bert_dir, table, pool="mean")
    np.testing.assert_allclose(vectors([r["embedding"] for r in records]),
                               vectors(want["embedding"]), atol=1e-6)


def test_a_directory_output_holds_one_parquet_part(bert_dir, tmp_path):
    src = _write(notes(3), tmp_path / "notes.jsonl")
    assert run(["embed", str(src), "-m", str(bert_dir), "-o", str(tmp_path / "emb"), "-q"]) == 0
    assert [p.name for p in (tmp_path / "emb").iterdir()] == ["part-00000.parquet"]
    assert run(["embed", str(src), "-m", str(bert_dir), "-o", str(tmp_path / "emb"), "--to",
                "jsonl", "-q"]) == 2


def test_missing_field_names_it_and_lists_the_others(bert_dir, llama_dir, tmp_path, capsys):
    src = _write(notes(3), tmp_path / "notes.jsonl")
    assert run(["embed", str(src), "-m", str(bert_dir), "--text-field", "body",
                "-o", str(tmp_path / "x.parquet")]) == 1
    err = capsys.readouterr().err
    assert "notes.jsonl: field 'body' not found; fields present: note_id, label, text" in err
    assert "--text-field" in err and not (tmp_path / "x.parquet").exists()
    assert run(["embed", str(src), "-m", str(llama_dir), "-o", str(tmp_path / "x.parquet")]) == 1
    assert "field 'input_ids' not found" in capsys.readouterr().err


def test_bad_model_directories_are_clear_errors(tmp_path, capsys):
    src = _write(notes(2), tmp_path / "notes.jsonl")
    (tmp_path / "empty").mkdir()
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps({"model_type": "ehrkit-gru"}))
    for model, message in [("missing", "no such model directory"),
                           ("empty", "no readable config.json"),
                           ("odd", "model type 'gpt2' cannot be embedded"),
                           ("noweights", "noweights")]:
        assert run(["embed", str(src), "-m", str(tmp_path / model)]) == 1, model
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


@pytest.mark.parametrize("args, message", [
    (["--hour", "3"], "--hour goes with GRU models"),
    (["--pool", "layers"], "--pool layers: a bert model pools with cls or mean or last"),
    (["--layer", "7"], "--layer 7: the model has 2 layers"),
    (["--max-length", "65"], "--max-length 65: use 2 to 64"),
])
def test_usage_errors(bert_dir, tmp_path, capsys, args, message):
    src = _write(notes(2), tmp_path / "notes.jsonl")
    assert run(["embed", str(src), "-m", str(bert_dir), *args]) == 2
    assert message in capsys.readouterr().err


def test_batches_are_sorted_and_within_budget():
    lengths = np.array([5, 0, 30, 12, 12, 7, 64])
    batches = plan(lengths, Budget(tokens=40))
    assert sorted(np.concatenate(batches).tolist()) == [0, 2, 3, 4, 5, 6]
    assert all(len(b) * lengths[b].max() <= 40 or len(b) == 1 for b in batches)
    assert [lengths[b].tolist() for b in batches] == [[64], [30], [12, 12, 7], [5]]
    ids, mask = pad_rows(np.arange(10), np.array([0, 4, 10]), np.array([1, 0]), -1,
                         lengths=np.array([3, 5]))
    assert ids.tolist() == [[4, 5, 6, 7, 8], [0, 1, 2, -1, -1]] and mask.sum() == 8


# ----------------------------------------------------------------------------- torchrun


def test_two_process_torchrun_parts_equal_one_process(gru_dir, series, tmp_path, ehrkit_env):
    # the GRU: its processes import no transformers models, so they start fast
    src = _write(series, tmp_path / "series.parquet")
    args = [str(src), "-m", str(gru_dir), "--chunk-rows", "3", "--device", "cpu", "-q"]
    assert run(["embed", *args, "-o", str(tmp_path / "one.parquet")]) == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", "-m", "ehrkit", "embed", *args, "-o", "parts"]
    for _ in range(2):  # a rendezvous port taken by another process between probe and bind
        done = subprocess.run(command, cwd=tmp_path, env={**ehrkit_env, "OMP_NUM_THREADS": "1"},
                              capture_output=True, timeout=300)
        if done.returncode == 0 or b"address already in use" not in done.stderr.lower():
            break
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == \
        ["part-00000.parquet", "part-00001.parquet"]
    assert pq.read_table(tmp_path / "parts" / "part-00001.parquet").num_rows == 6  # chunks 1, 3
    one = pq.read_table(tmp_path / "one.parquet").to_pylist()
    two = sorted(pq.read_table(tmp_path / "parts").to_pylist(), key=lambda r: r["stay_id"])
    assert sorted(r["stay_id"] for r in one) == [r["stay_id"] for r in two]
    one = sorted(one, key=lambda r: r["stay_id"])
    assert [{k: v for k, v in r.items() if k != "embedding"} for r in one] == \
        [{k: v for k, v in r.items() if k != "embedding"} for r in two]
    np.testing.assert_allclose(vectors([r["embedding"] for r in two]),
                               vectors([r["embedding"] for r in one]), atol=1e-5)


def test_doctests_of_the_batching_helpers():
    import doctest

    from ehrkit.embed import batching

    assert doctest.testmod(batching).failed == 0
