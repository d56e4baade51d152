"""The training loop through `ehrkit pretrain --objective multilabel`: it learns, resumes after
kill -9 to the same weights, runs data-parallel under torchrun (gloo), and records provenance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ehrkit.models.gru import GRUClassifier
from ehrkit.train.loop import TrainConfig, shard, split, warmup_then_decay

COMMON = ["--objective", "multilabel", "--labels", "phenotypes[:20]", "--hidden", "16",
          "--batch-size", "16", "--lr", "5e-3", "-q"]


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("series") / "series.parquet"
    done = subprocess.run(["ehrkit", "synth", "series", "-n", "400", "--seed", "2", "-o", str(path),
                           "-q"], capture_output=True)
    assert done.returncode == 0, done.stderr
    return path


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_multilabel_gru_learns_and_writes_a_complete_run(ehrkit, series, tmp_path):
    done = ehrkit("pretrain", series, *COMMON, "--max-steps", "60", "--eval-every", "20",
                  "--val-fraction", "0.2", "-o", "run")
    assert done.returncode == 0, done.stderr.decode()
    summary = json.loads(done.stdout)
    assert summary["steps"] == 60 and summary["run_dir"] == "run"
    run = tmp_path / "run"
    vals = [row["val_loss"] for row in metrics(run) if "val_loss" in row]
    assert len(vals) == 3 and vals[-1] < vals[0]
    assert {"config.json", "model.safetensors", "ehrkit.json", "README.md", "metrics.jsonl",
            "checkpoint"} <= {p.name for p in run.iterdir()}
    model = GRUClassifier.from_pretrained(run)
    assert model.config.num_labels == 20 and model.config.label_names[0] == "phenotypes[0]"
    record = json.loads((run / "ehrkit.json").read_text())
    assert record["inputs"][0]["sha256"] and record["versions"]["torch"]
    assert record["result"]["steps"] == 60 and record["settings"]["hidden_size"] == 16
    assert "## Intended use" in (run / "README.md").read_text()


def test_an_existing_run_directory_is_not_overwritten(ehrkit, series, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    done = ehrkit("pretrain", series, *COMMON, "--max-steps", "2", "-o", "run")
    assert done.returncode == 2 and b"--resume" in done.stderr
    done = ehrkit("pretrain", series, *COMMON, "--max-steps", "2", "-o", "fresh", "--resume")
    assert done.returncode == 2 and b"nothing to resume" in done.stderr


def test_resume_after_kill_9_reaches_the_same_weights(ehrkit, series, tmp_path):
    """Killed after step 15 (last checkpoint at 10), resumed: same final step, same weights,
    with dropout on (its random state is part of the checkpoint)."""
    args = [series, *COMMON, "--max-steps", "30", "--eval-every", "10", "--dropout", "0.3"]
    whole = ehrkit("pretrain", *args, "-o", "whole")
    assert whole.returncode == 0, whole.stderr.decode()
    killed = ehrkit("pretrain", *args, "-o", "killed", env={"EHRKIT_KILL_AT_STEP": "15"})
    assert killed.returncode == -9
    assert json.loads((tmp_path / "killed" / "checkpoint" / "trainer.json").read_text())[
        "state"]["step"] == 10
    resumed = ehrkit("pretrain", *args, "-o", "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert json.loads(resumed.stdout)["steps"] == 30
    a = load_file(str(tmp_path / "whole" / "checkpoint" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in metrics(tmp_path / "killed")] == \
        [r["step"] for r in metrics(tmp_path / "whole")]


@pytest.mark.slow
def test_two_process_torchrun_with_accumulation_matches_one_process(ehrkit, series, tmp_path,
                                                                        ehrkit_env):
    args = [str(series), "--objective", "multilabel", "--labels", "phenotypes[:20]", "--hidden",
            "16", "--lr", "5e-3", "--dropout", "0", "--max-steps", "12", "--eval-every", "6",
            "--device", "cpu", "-q"]
    one = ehrkit("pretrain", *args, "--batch-size", "16", "-o", "one")
    assert one.returncode == 0, one.stderr.decode()
    # two ranks x 2 micro-batches of 4 rows = one process with 16 rows per step
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
               "2", "-m", "ehrkit", "pretrain", *args, "--batch-size", "4", "--grad-accum", "2",
               "-o", "two"]
    for _ in range(2):  # a rendezvous port taken by another process between probe and bind
        two = subprocess.run(command, cwd=tmp_path, env=ehrkit_env, capture_output=True,
                             timeout=300)
        if two.returncode == 0 or b"address already in use" not in two.stderr.lower():
            break
    assert two.returncode == 0, two.stderr.decode()[-3000:]
    assert two.stdout.decode().count("\n") == 1  # only rank 0 writes the summary
    a, b = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        for key in ("loss", "val_loss"):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-5)


def test_shards_and_micro_batches_partition_a_global_batch():
    batch = {"x": torch.arange(12)}
    parts = [shard(batch, r, 3)["x"].tolist() for r in range(3)]
    assert sorted(sum(parts, [])) == list(range(12))
    assert [p["x"].tolist() for p in split(shard(batch, 1, 3), 2)] == [[1, 4], [7, 10]]


def test_warmup_then_linear_decay():
    factor = warmup_then_decay(TrainConfig(warmup=0.2), 10)
    values = [factor(s) for s in range(10)]
    assert values[0] < values[1] < 1 and values[2] == 1.0 and values[-1] < 0.2
