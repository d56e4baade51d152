"""End to end through real shell pipes: every way in and out gives the same records."""

from __future__ import annotations

import gzip
import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest



@pytest.fixture(scope="module")
def notes(tmp_path_factory, ehrkit_env):
    """300 synthetic notes as JSONL and Parquet, and the reference `notes clean` output."""
    root = tmp_path_factory.mktemp("notes")
    script = ("set -o pipefail\n"
              "ehrkit synth notes -n 300 --seed 1 -o notes.jsonl &\n"
              "ehrkit synth notes -n 300 --seed 1 -o notes.parquet &\n"
              "wait -n && wait -n\n"
              "ehrkit notes clean notes.jsonl -o reference.jsonl\n")
    done = subprocess.run(["bash", "-c", script], cwd=root, env=ehrkit_env, capture_output=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return root


def test_synth_writes_the_same_records_as_jsonl_and_parquet(notes, records_of):
    records = records_of(notes / "notes.jsonl")
    assert len(records) == 300
    assert records_of(notes / "notes.parquet") == records


def test_the_readme_style_pipeline(shell, tmp_path, notes, records_of):
    done = shell("ehrkit synth notes -n 300 --seed 1 | ehrkit notes clean "
                 "| ehrkit notes clean --from jsonl -o out.parquet")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b""
    twice = shell(f"ehrkit notes clean {notes / 'reference.jsonl'} -o twice.jsonl")
    assert twice.returncode == 0, twice.stderr.decode()
    out = records_of(tmp_path / "out.parquet")
    assert out == records_of(tmp_path / "twice.jsonl")
    assert [r["row_id"] for r in out] == list(range(1, 301))
    source = records_of(notes / "notes.jsonl")
    assert [{k: v for k, v in r.items() if k != "text"} for r in source] == \
        [{k: v for k, v in r.items() if k not in ("text", "sentences")} for r in out]


OUTPUTS = {  # name: how the command line ends
    "out.jsonl": "-o out.jsonl",
    "out.parquet": "-o out.parquet",
    "stdout.jsonl": "> stdout.jsonl",
    "stdout.parquet": "--to parquet > stdout.parquet",
}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("source", ["file", "stdin"])
def test_every_way_in_and_out_gives_the_same_records(shell, tmp_path, notes, records_of, fmt,
                                                     source):
    path = notes / f"notes.{fmt}"
    head = f"ehrkit notes clean {path}" if source == "file" else f"cat {path} | ehrkit notes clean"
    # The four outputs run side by side; each one's own exit status is checked.
    script = "\n".join(f"( {head} {tail} ) 2>{name}.err & pids+=($!)"
                       for name, tail in OUTPUTS.items())
    script += '\nfor p in "${pids[@]}"; do wait "$p" || echo "failed: $p"; done\n'
    done = shell("pids=()\n" + script)
    assert done.returncode == 0 and done.stdout == b"", done.stdout
    reference = records_of(notes / "reference.jsonl")
    assert len(reference) == 300
    for name in OUTPUTS:
        assert (tmp_path / f"{name}.err").read_text().startswith("notes clean: 300 notes")
        data = (tmp_path / name).read_bytes()
        assert (data[:4] == b"PAR1") == name.endswith(".parquet"), name
        assert records_of(data) == reference, name


def test_gzip_in_and_out(shell, tmp_path, notes):
    done = shell("ehrkit synth notes -n 300 --seed 1 -o notes.jsonl.gz\n"
                 "ehrkit notes clean notes.jsonl.gz -o out.jsonl.gz\n"
                 "gzip -dc out.jsonl.gz | cmp - " + str(notes / "reference.jsonl") + "\n"
                 "gzip -dc notes.jsonl.gz | cmp - " + str(notes / "notes.jsonl") + "\n"
                 "cat notes.jsonl.gz | ehrkit notes clean > stdin.jsonl\n"
                 "cmp stdin.jsonl " + str(notes / "reference.jsonl"))
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    for name in ("notes.jsonl.gz", "out.jsonl.gz"):
        assert (tmp_path / name).read_bytes()[:2] == b"\x1f\x8b"


def test_several_inputs_are_concatenated_in_order(shell, tmp_path, notes, records_of):
    lines = (notes / "notes.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_bytes(b"".join(lines[:100]))
    middle = pa.Table.from_pylist([json.loads(line) for line in lines[100:200]])
    pq.write_table(middle, tmp_path / "b.parquet")
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(b"".join(lines[200:])))
    done = shell("ehrkit notes clean a.jsonl b.parquet c.jsonl.gz -o out.jsonl\n"
                 "ehrkit notes clean c.jsonl.gz b.parquet a.jsonl --to parquet > reversed.parquet")
    assert done.returncode == 0, done.stderr.decode()
    reference = records_of(notes / "reference.jsonl")
    assert records_of(tmp_path / "out.jsonl") == reference
    assert records_of(tmp_path / "reversed.parquet") == \
        reference[200:] + reference[100:200] + reference[:100]


def test_one_or_two_workers_give_identical_output_in_input_order(shell, tmp_path, big_notes):
    assert big_notes.stat().st_size > 2 * (8 << 20)  # spans several JSONL blocks
    done = shell(f"ehrkit notes clean --workers 1 {big_notes} -o w1.jsonl &\n"
                 f"ehrkit notes clean --workers 2 < {big_notes} > w2.jsonl &\n"
                 "wait -n && wait -n\n"
                 "cmp w1.jsonl w2.jsonl")
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    out = (tmp_path / "w2.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["row_id"] for line in out] == list(range(1, 20001))
