"""Gupta et al.'s transfer protocol end to end (bench/transfer.py, through the real commands):
GRU pretrained on 20 phenotypes, L1 probes on the 5 others and mortality, against logistic
regression on hand-crafted statistics, across training fractions. Small and fast here; the
full-size run is `make transfer`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_transfer_protocol_runs_end_to_end(tmp_path, ehrkit_env):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "transfer.py"), "--n", "500", "--hidden", "16",
         "--epochs", "1", "--fractions", "0.5,1", "--replicates", "1", "--workdir", str(tmp_path)],
        capture_output=True, env=ehrkit_env, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    lines = done.stdout.decode().splitlines()
    rows = [line.split() for line in lines[2:]]
    targets = {row[0] for row in rows}
    assert targets == {f"phenotypes[{i}]" for i in range(20, 25)} | {"mortality"}
    assert {row[1] for row in rows} == {"0.5", "1"}
    for row in rows:  # GRU and hand-crafted AUROCs are numbers in [0, 1]
        assert 0 <= float(row[2]) <= 1 and 0 <= float(row[4]) <= 1
    assert (tmp_path / "gru" / "model.safetensors").is_file()
