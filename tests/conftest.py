"""Shared fixtures: run the real `ehrkit` command, and read records back without ehrkit."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The interpreter's own bin directory first: the console script next to it (not a shim).
ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
ENV.pop("EHRKIT_DEBUG", None)


def _run(argv, *, cwd=None, env=None, input=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=False, cwd=cwd, env={**ENV, **(env or {})}, input=input,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="session")
def ehrkit_env() -> dict:
    """The environment the `ehrkit` and `shell` fixtures run in (for your own Popen)."""
    return dict(ENV)


@pytest.fixture
def ehrkit(tmp_path):
    """ehrkit(*args, input=bytes, env={}) runs `ehrkit` in tmp_path; returns CompletedProcess
    with bytes stdout and stderr."""
    def call(*args, input=None, env=None, cwd=None, timeout=120):
        return _run(["ehrkit", *map(str, args)], cwd=cwd or tmp_path, env=env, input=input,
                    timeout=timeout)
    return call


@pytest.fixture
def shell(tmp_path):
    """shell(script) runs a bash script with `set -o pipefail` in tmp_path."""
    def call(script, env=None, timeout=120):
        return _run(["bash", "-c", "set -o pipefail\n" + script], cwd=tmp_path, env=env,
                    timeout=timeout)
    return call


def load_records(source) -> list[dict]:
    """Records from a .jsonl/.jsonl.gz/.parquet path or from JSONL/Parquet bytes, read with
    json and pyarrow directly so that tests do not trust ehrkit's own reader."""
    import pyarrow.parquet as pq

    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return pq.read_table(source).to_pylist()
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    if data[:4] == b"PAR1":
        return pq.read_table(io.BytesIO(data)).to_pylist()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def write_jsonl(path, records) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def records_of():
    """records_of(path or bytes) -> list of dicts (see load_records)."""
    return load_records


@pytest.fixture
def jsonl_file(tmp_path):
    """jsonl_file(name, records) writes records as JSONL under tmp_path; returns the path."""
    return lambda name, records: write_jsonl(tmp_path / name, records)


@pytest.fixture(scope="session")
def big_notes(tmp_path_factory) -> Path:
    """About 22 MB of synthetic notes: several JSONL blocks of ehrkit.io.BLOCK_BYTES."""
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    done = _run(["ehrkit", "synth", "notes", "-n", "20000", "--seed", "3", "-o", str(path)])
    assert done.returncode == 0, done.stderr.decode()
    return path


@pytest.fixture(autouse=True)
def _default_log_level():
    """Every test starts at the default verbosity: library calls made in this process with -q
    (or -v) must not silence (or flood) the stderr a later test checks."""
    from ehrkit import log

    log.configure(quiet=False, verbose=0)
