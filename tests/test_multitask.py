"""`ehrkit multitask`: task strings and TOML files, the three schedules' step plans, every head
type learning synthetic tasks under each schedule with a tiny BERT built from config, one-pass
`predict` equal to the run's own predictions and to a single head's pass, the original's frozen
heads, the multitask-vs-single table, a two-process torchrun run equal to one process, and
errors that name the file and field."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from ehrkit.cli import run
from ehrkit.errors import UsageError
from ehrkit.multitask.config import load_toml, parse_task
from ehrkit.multitask.task import MultitaskTask


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> SimpleNamespace:
    """Synthetic NER sentences, sentence pairs, a single-text label (does the sentence name a
    drug?) and a tiny BERT (no dropout, so one and two processes train alike) with a WordPiece
    vocabulary learnt on their texts."""
    from transformers import BertConfig, BertForMaskedLM

    from ehrkit.train.wordpiece import train_vocabulary

    work = tmp_path_factory.mktemp("multitask")
    assert run(["synth", "ner", "-n", "700", "--seed", "1", "-o", str(work / "ner.jsonl"), "-q"]) == 0
    assert run(["synth", "pairs", "-n", "700", "--seed", "2", "-o", str(work / "pairs.jsonl"),
                "-q"]) == 0
    sentences = [json.loads(line) for line in open(work / "ner.jsonl")]
    pairs = [json.loads(line) for line in open(work / "pairs.jsonl")]
    with open(work / "drug.jsonl", "w") as out:
        for r in sentences:
            drug = int(any(t.endswith("-Drug") for t in r["tags"]))
            out.write(json.dumps({"id": r["id"], "text": r["text"], "label": drug}) + "\n")
    texts = [r["text"] for r in sentences] + [p[k] for p in pairs for k in ("sentence_a", "sentence_b")]
    tokenizer = train_vocabulary(texts, 600, 128)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=48, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=96, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    bert = work / "bert"
    BertForMaskedLM(config).save_pretrained(bert)
    tokenizer.save_pretrained(bert)
    return SimpleNamespace(work=work, bert=bert, ner=work / "ner.jsonl", pairs=work / "pairs.jsonl",
                           drug=work / "drug.jsonl")


def _tasks(d) -> list[str]:
    return ["--task", f"ner=ner:{d.ner}", "--task", f"sim=regression:{d.pairs} label=similarity",
            "--task", f"nli=classification:{d.pairs} label=entailment",
            "--task", f"drug=classification:{d.drug}"]


FAST = ["--lr", "2e-3", "--batch-size", "16", "--max-length", "48", "-q"]


def _summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- task specs


def test_task_strings_and_toml(tmp_path):
    task = parse_task("sim=regression:a.jsonl,b.jsonl label=similarity batch=40 text=x,y")
    assert (task.name, task.type, task.data, task.label, task.batch_size, task.text) == \
        ("sim", "regression", ("a.jsonl", "b.jsonl"), ("similarity",), 40, ("x", "y"))
    assert parse_task("ncbi=ner:train.tsv").head == "token"
    for bad in ("sim", "sim=regression", "sim=nope:a.jsonl", "1x=ner:a", "s=ner:a oops",
                "s=ner:a colour=red", "s=ner:a batch_size=0"):
        with pytest.raises(UsageError):
            parse_task(bad)
    (tmp_path / "tasks.toml").write_text(
        '[defaults]\nbatch_size = 8\n\n[tasks.ncbi]\ntype = "ner"\ndata = ["train.tsv"]\n\n'
        '[tasks.sim]\ntype = "regression"\ndata = "/abs/pairs.jsonl"\nbatch_size = 40\n'
        'text = ["sentence_a", "sentence_b"]\n')
    ncbi, sim = load_toml(tmp_path / "tasks.toml")
    assert ncbi.data == (str(tmp_path / "train.tsv"),) and ncbi.batch_size == 8
    assert sim.data == ("/abs/pairs.jsonl",) and sim.batch_size == 40 and len(sim.text) == 2
    (tmp_path / "bad.toml").write_text("[tasks.x\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_toml(tmp_path / "bad.toml")


# ----------------------------------------------------------------------------- schedules


def _schedule(schedule: str, sizes=(20, 8), batch=(4, 2)) -> MultitaskTask:
    tasks = [SimpleNamespace(name=f"t{k}", train_rows=np.arange(n), val_rows=np.arange(0),
                             config=SimpleNamespace(batch_size=b, weight=1.0))
             for k, (n, b) in enumerate(zip(sizes, batch))]
    return MultitaskTask(None, tasks, schedule, seed=3, base_batch=4, pad_id=0)


def test_round_robin_takes_turns_until_the_largest_task_runs_out():
    task = _schedule("round-robin")
    plan = task.plan(0, 1)
    assert len(plan) == 2 * 5  # two tasks x the largest task's 5 batches
    assert [step[0][0] for step in plan] == [0, 1] * 5
    big = np.concatenate([step[0][1] for step in plan if step[0][0] == 0])
    assert sorted(big.tolist()) == list(range(20))  # one pass over the large task
    small = [step[0][1] for step in plan if step[0][0] == 1]
    assert all(len(rows) == 2 for rows in small)  # 4 batches a pass: restarted once, reshuffled
    assert sorted(np.concatenate(small[:4]).tolist()) == list(range(8))
    assert task.plan(0, 1)[3][0][1].tolist() == plan[3][0][1].tolist()  # deterministic
    assert task.plan(1, 1)[0][0][1].tolist() != plan[0][0][1].tolist()  # reshuffled by epoch
    assert task.steps_per_task(13, 1) == [7, 6]
    assert len(task.plan(0, 2)) == 2 * 2  # two ranks: global batches twice as large


def test_proportional_and_sum_schedules():
    proportional = _schedule("proportional").plan(0, 1)
    assert len(proportional) == 5 + 4  # every task's batches once, on average
    assert {step[0][0] for step in proportional} == {0, 1}
    summed = _schedule("sum").plan(0, 1)
    assert len(summed) == 5 and all([k for k, _ in step] == [0, 1] for step in summed)


# ----------------------------------------------------------------------------- learning


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["round-robin", "proportional", "sum"])
def test_every_head_type_learns_under_each_schedule(data, tmp_path, capsys, schedule):
    out = tmp_path / "run"
    assert run(["multitask", "--init", str(data.bert), *_tasks(data), "--schedule", schedule,
                "--epochs", "3", *FAST, "-o", str(out)]) == 0
    summary = _summary(capsys)
    test = summary["test"]
    assert summary["selected_by"] == "tasks_mean" and summary["schedule"] == schedule
    assert test["ner"]["entity_f1"] > 0.6  # chance: about 0
    assert test["sim"]["pearson"] > 0.4  # chance: 0
    assert test["nli"]["macro_f1"] > 0.5  # three classes: chance about 0.33
    assert test["drug"]["auroc"] > 0.8  # chance: 0.5
    assert set(json.loads((out / "multitask.json").read_text())["tasks"][0]) >= \
        {"name", "head", "input", "fields", "spec"}
    for name in ("ner", "sim", "nli", "drug"):
        assert (out / "predictions" / f"{name}.parquet").exists()


@pytest.mark.slow
def test_one_pass_predict_matches_the_run_and_each_head_alone(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["multitask", "--init", str(data.bert), *_tasks(data), "--epochs", "1", *FAST,
                "-o", str(out)]) == 0
    capsys.readouterr()
    # the run's own held_out predictions equal `predict` on the same records
    saved = pq.read_table(out / "predictions" / "drug.parquet").to_pylist()
    ids = {r["id"] for r in saved}
    held = data.work / "held.jsonl"
    held.write_text("".join(line for line in open(data.drug) if json.loads(line)["id"] in ids))
    assert run(["predict", str(held), "-m", str(out), "-o", str(tmp_path / "all.jsonl"), "-q"]) == 0
    every = [json.loads(line) for line in open(tmp_path / "all.jsonl")]
    by_id = {r["id"]: r for r in every}
    for r in saved:
        assert by_id[r["id"]]["drug_score"] == pytest.approx(r["score"], abs=1e-6)
        assert by_id[r["id"]]["drug_label"] == r["label"]
    # one pass over text records: NER spans and the text head; pair heads do not fit
    assert "ner_spans" in every[0] and "sim_score" not in every[0] and "text" not in every[0]
    # one head alone gives the same outputs as in the shared pass
    assert run(["predict", str(held), "-m", str(out), "--tasks", "drug", "-o",
                str(tmp_path / "one.jsonl"), "-q"]) == 0
    alone = [json.loads(line) for line in open(tmp_path / "one.jsonl")]
    assert [r["drug_score"] for r in alone] == [r["drug_score"] for r in every]
    assert "ner_spans" not in alone[0]
    # pairs: both pair heads in one pass; evaluate reads a task's columns
    assert run(["predict", str(data.pairs), "-m", str(out), "-o", str(tmp_path / "p.parquet"),
                "-q"]) == 0
    table = pq.read_table(tmp_path / "p.parquet")
    assert {"sim_score", "sim_label", "nli_score", "nli_label"} <= set(table.column_names)
    assert run(["evaluate", str(tmp_path / "p.parquet"), "--label-field", "nli_label",
                "--score-field", "nli_score", "-q", "-o", str(tmp_path / "m.jsonl")]) == 0
    assert any(json.loads(line)["metric"] == "macro_f1" for line in open(tmp_path / "m.jsonl"))
    # NER records with tokens: tags per word beside the gold tags
    assert run(["predict", str(data.ner), "-m", str(out), "--tasks", "ner", "-o",
                str(tmp_path / "n.jsonl"), "-q"]) == 0
    first = json.loads(open(tmp_path / "n.jsonl").readline())
    assert len(first["ner_prediction"]) == len(first["tokens"]) == len(first["ner_label"])
    # the encoder directory is a plain BERT: embed reads it
    assert run(["embed", str(held), "-m", str(out), "-o", str(tmp_path / "e.parquet"), "-q"]) == 0
    # a head that does not fit the records, asked for by name
    assert run(["predict", str(data.pairs), "-m", str(out), "--tasks", "ner", "-q"]) == 2
    assert "lack the fields" in capsys.readouterr().err


@pytest.mark.slow
def test_frozen_heads_stay_at_their_start_and_compare_single(data, tmp_path, capsys):
    from safetensors.torch import load_file

    from ehrkit.multitask import model as mt

    out = tmp_path / "run"
    tasks = ["--task", f"ner=ner:{data.ner}", "--task", f"drug=classification:{data.drug}"]
    assert run(["multitask", "--init", str(data.bert), *tasks, "--frozen-heads", "--max-steps",
                "6", "--compare-single", *FAST, "-o", str(out)]) == 0
    summary = _summary(capsys)
    heads = mt.read_heads(out)
    fresh = mt.build(data.bert, heads, 0)  # the heads the run started from (seed 0)
    saved = load_file(str(out / "heads.safetensors"))
    for name, head in fresh.heads.items():
        assert torch.equal(saved[f"{name}.weight"], head.weight.detach())
    trained = mt.load(out).encoder.state_dict()
    start = fresh.encoder.state_dict()
    assert any(not torch.equal(trained[k], start[k]) for k in start)
    # each task alone, with as many steps on its own batches as it had here
    assert summary["steps_per_task"] == {"ner": 3, "drug": 3}
    compare = json.loads((out / "compare.json").read_text())
    rows = {(r["task"], r["metric"]): r for r in compare["rows"]}
    row = rows[("drug", "auroc")]
    assert row["delta"] == pytest.approx(row["multitask"] - row["single"])
    assert ("ner", "entity_f1") in rows
    alone = json.loads((out / "single" / "drug" / "ehrkit.json").read_text())
    assert alone["result"]["steps"] == 3


# ----------------------------------------------------------------------------- torchrun


@pytest.mark.slow
def test_two_process_torchrun_matches_one_process(data, tmp_path, ehrkit_env):
    def metrics(directory):
        return [json.loads(line) for line in open(directory / "metrics.jsonl")]

    args = ["multitask", "--init", str(data.bert), "--task", f"ner=ner:{data.ner}", "--task",
            f"sim=regression:{data.pairs} label=similarity", "--max-steps", "8", "--eval-every",
            "4", "--lr", "2e-3", "--max-length", "48", "--device", "cpu", "-q"]
    one = subprocess.run([sys.executable, "-m", "ehrkit", *args, "--batch-size", "16", "-o",
                          str(tmp_path / "one")], env=ehrkit_env, capture_output=True, timeout=300)
    assert one.returncode == 0, one.stderr.decode()[-3000:]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", "-m", "ehrkit", *args, "--batch-size", "8", "-o", str(tmp_path / "two")]
    for _ in range(2):  # a rendezvous port taken by another process between probe and bind
        two = subprocess.run(command, env=ehrkit_env, capture_output=True, timeout=300)
        if two.returncode == 0 or b"address already in use" not in two.stderr.lower():
            break
    assert two.returncode == 0, two.stderr.decode()[-3000:]
    assert two.stdout.decode().count("\n") == 1  # only rank 0 writes the summary
    a, b = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        for key in ("loss", "val_loss", "val_sim.pearson"):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-5)
    assert (tmp_path / "two" / "heads.safetensors").exists()


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_file_and_field_and_exit_codes(data, tmp_path, capsys):
    secret = tmp_path / "secret.jsonl"
    secret.write_text(json.dumps({"text": "SECRETMARKER patient", "outcome": 1}) + "\n")
    assert run(["multitask", "--init", str(data.bert), "--task", f"x=classification:{secret}",
                "-o", str(tmp_path / "a"), "-q"]) == 1
    err = capsys.readouterr().err
    assert str(secret) in err and "label" in err and "outcome" in err
    assert "SECRETMARKER" not in err
    assert run(["multitask", "--init", str(data.bert), "--task", "x=bogus:a.jsonl", "-q"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert run(["multitask", "--init", str(data.bert), "-q"]) == 2
    assert "--task" in capsys.readouterr().err
    assert run(["multitask", "--init", str(data.bert), "--task", f"a=ner:{data.ner}", "--task",
                f"a=ner:{data.ner}", "-q"]) == 2
    assert run(["multitask", "--init", str(tmp_path / "nope"), "--task", f"a=ner:{data.ner}",
                "-q"]) == 1


def test_a_time_capped_run_validates_its_last_model(data, tmp_path, capsys):
    assert run(["multitask", "--init", str(data.bert), "--task", f"drug=classification:{data.drug}",
                "--max-minutes", "0.000001", *FAST, "-o", str(tmp_path / "run")]) == 0
    summary = _summary(capsys)
    assert summary["stopped"] == "max minutes" and summary["steps"] == 1
    assert summary["best_step"] == 1 and "auroc" in summary["validation"]["drug"]
