"""Errors and exit codes (DESIGN.md section 5), through the real `ehrkit` command: 0 success
(also when a pipe reader closes early), 1 data or runtime error, 2 usage error, 130
interrupted; messages say what and where, never echo record content."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ehrkit import io as rio
from ehrkit.cli import run

MARKER = "ZZMARKER-7f3a"  # planted in note text and other fields: must never reach stderr


def notes_with_marker(n: int = 5) -> list[dict]:
    return [{"id": i, "text": f"Pt {MARKER} seen today. Plan {MARKER}.", "unit": f"{MARKER}-{i}"}
            for i in range(n)]


def lines_with_marker(n: int = 5) -> list[str]:
    return [json.dumps(r) for r in notes_with_marker(n)]


def assert_clean_failure(done, code: int = 1) -> str:
    """The run failed with `code`, said so on stderr only, and leaked no record content."""
    err = done.stderr.decode()
    assert done.returncode == code, err
    assert done.stdout == b""
    assert MARKER not in err and MARKER.lower() not in err.lower()
    assert "Traceback" not in err
    return err


# ----------------------------------------------------------------------------- data errors

def test_malformed_line_names_file_and_line(ehrkit, tmp_path):
    lines = lines_with_marker()
    lines[2] = '{"id": 2, "text": "' + MARKER + ' unterminated}'
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    err = assert_clean_failure(ehrkit("notes", "clean", "in.jsonl"))
    assert err.startswith("error: in.jsonl: line 3: malformed JSON at column ")
    assert "hint: each line must hold one JSON object" in err


def test_a_line_that_is_not_an_object(ehrkit, tmp_path):
    lines = lines_with_marker()
    lines[1] = json.dumps([MARKER, 1])
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    err = assert_clean_failure(ehrkit("notes", "clean", "in.jsonl"))
    assert "error: in.jsonl: line 2: expected a JSON object, found array" in err


def test_missing_field_lists_fields_and_names_the_option(ehrkit, tmp_path, jsonl_file):
    jsonl_file("in.jsonl", [{"id": 1, "body": f"{MARKER} note", "author": MARKER}])
    err = assert_clean_failure(ehrkit("notes", "clean", "in.jsonl"))
    assert "error: in.jsonl: field 'text' not found; fields present: id, body, author" in err
    assert "--text-field" in err
    done = ehrkit("notes", "clean", "in.jsonl", "--text-field", "body")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["author"] == MARKER


def test_missing_field_on_stdin(ehrkit):
    done = ehrkit("notes", "clean", "--text-field", "note",
                  input=json.dumps({"text": MARKER}).encode() + b"\n")
    err = assert_clean_failure(done)
    assert "error: <stdin>: field 'note' not found; fields present: text" in err


def test_type_conflict_names_line_and_field(ehrkit, tmp_path):
    lines = lines_with_marker(6)
    lines[4] = json.dumps({"id": f"{MARKER}", "text": MARKER, "unit": MARKER})
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    err = assert_clean_failure(ehrkit("notes", "clean", "in.jsonl"))
    assert "error: in.jsonl: line 5: field 'id' is string but earlier records have number" in err


def test_unknown_file_format_hints_at_from(ehrkit, tmp_path):
    (tmp_path / "notes.txt").write_text("\n".join(lines_with_marker()) + "\n")
    err = assert_clean_failure(ehrkit("notes", "clean", "notes.txt"))
    assert "error: notes.txt: unknown file format" in err
    assert "--from" in err
    done = ehrkit("notes", "clean", "notes.txt", "--from", "jsonl", "--no-segment")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 5


def test_unknown_output_format_hints_at_to(ehrkit, jsonl_file, tmp_path):
    jsonl_file("in.jsonl", notes_with_marker())
    err = assert_clean_failure(ehrkit("notes", "clean", "in.jsonl", "-o", "out.txt"))
    assert "error: out.txt: unknown file format" in err and "--to" in err
    assert os.listdir(tmp_path) == ["in.jsonl"]


def test_not_parquet_despite_the_name(ehrkit, tmp_path):
    (tmp_path / "in.parquet").write_text("\n".join(lines_with_marker()) + "\n")
    err = assert_clean_failure(ehrkit("notes", "clean", "in.parquet"))
    assert "error: in.parquet: not a readable Parquet file" in err and "--from" in err


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_invalid_utf8_names_the_line(ehrkit, tmp_path, source):
    data = ("\n".join(lines_with_marker(2)) + "\n").encode() + \
        b'{"id": 2, "text": "' + MARKER.encode() + b' caf\xe9 \xff"}\n'
    (tmp_path / "in.jsonl").write_bytes(data)
    done = ehrkit("notes", "clean", "in.jsonl") if source == "file" else \
        ehrkit("notes", "clean", input=data)
    err = assert_clean_failure(done)
    name = "in.jsonl" if source == "file" else "<stdin>"
    assert f"error: {name}: line 3: invalid UTF-8 byte" in err and "UTF-8" in err.split("hint:")[1]


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_a_json_array_hints_at_jq(ehrkit, tmp_path, source):
    data = json.dumps(notes_with_marker(), indent=1).encode()
    (tmp_path / "notes.json").write_bytes(data)
    done = ehrkit("notes", "clean", "notes.json") if source == "file" else \
        ehrkit("notes", "clean", input=data)
    err = assert_clean_failure(done)
    assert "input is a JSON array, not JSON Lines" in err
    assert "jq -c '.[]'" in err


def test_a_missing_input_file(ehrkit):
    err = assert_clean_failure(ehrkit("notes", "clean", "absent.jsonl"))
    assert "error: absent.jsonl: no such file or directory" in err


def test_a_failed_run_leaves_an_existing_output_alone(ehrkit, tmp_path):
    lines = lines_with_marker(3)
    lines[2] = "{" + MARKER
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    for name in ("out.jsonl", "out.parquet"):
        (tmp_path / name).write_bytes(b"old")
        assert_clean_failure(ehrkit("notes", "clean", "in.jsonl", "-o", name))
        assert (tmp_path / name).read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl", "out.jsonl", "out.parquet"]


def test_quiet_still_shows_errors(ehrkit, tmp_path):
    (tmp_path / "in.jsonl").write_text("{\n")
    err = assert_clean_failure(ehrkit("notes", "clean", "-q", "in.jsonl"))
    assert err.startswith("error: in.jsonl: line 1: malformed JSON")


# ----------------------------------------------------------------------------- usage errors

@pytest.mark.parametrize("args, mentions", [
    (["notes", "clean", "--no-such-option"], "--no-such-option"),
    (["notes", "clean", "--profile", "bogus"], "--profile"),
    (["notes", "clean", "--from", "csv"], "--from"),
    (["notes", "clean", "--workers", "0"], "--workers"),
    (["synth", "notes", "-n", "many"], "-n"),
    (["no-such-command"], "no-such-command"),
])
def test_usage_errors_exit_2(ehrkit, args, mentions):
    done = ehrkit(*args, input=b"")
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert done.stdout == b""
    assert mentions in err and "Usage:" in err


# ----------------------------------------------------------------------------- closed pipes

@pytest.mark.parametrize("command", [
    "ehrkit synth notes -n 20000",
    "ehrkit synth notes -n 20000 --to parquet",
    "ehrkit notes clean BIG",
    "ehrkit notes clean --workers 2 < BIG",
    "ehrkit notes clean BIG --to parquet",
])
def test_a_reader_closing_the_pipe_early_is_success(shell, tmp_path, big_notes, command):
    command = command.replace("BIG", str(big_notes))
    done = shell(f"{command} 2>err.txt | head -1 >first.txt\n"
                 "status=(${PIPESTATUS[@]}); echo ${status[0]} ${status[1]}")
    assert done.stdout.decode().split() == ["0", "0"], done.stderr
    assert (tmp_path / "err.txt").read_bytes() == b""
    assert (tmp_path / "first.txt").stat().st_size > 0


# ----------------------------------------------------------------------------- Ctrl-C

def _interrupt(argv: list[str], cwd, env, temp_glob: str, timeout: float = 30):
    """Start ehrkit, wait until its temporary output exists, send SIGINT, return the result."""
    proc = subprocess.Popen(["ehrkit", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not list(cwd.glob(temp_glob)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no temporary output appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_during_notes_clean_leaves_nothing(tmp_path, ehrkit_env, big_notes):
    # Three passes over 22 MB: seconds of work, so the signal lands mid-run.
    done = _interrupt(["notes", "clean", *[str(big_notes)] * 3, "-o", "out.jsonl"], tmp_path,
                      ehrkit_env, ".out.jsonl.*.tmp")
    assert done.returncode == 130, done.stderr
    assert done.stderr.decode().strip() == "error: interrupted"
    assert os.listdir(tmp_path) == []


def test_ctrl_c_during_synth_parquet_leaves_nothing(tmp_path, ehrkit_env):
    done = _interrupt(["synth", "notes", "-n", "1000000", "-o", "x.parquet"], tmp_path,
                      ehrkit_env, ".x.parquet.*.tmp")
    assert done.returncode == 130, done.stderr
    assert done.stderr.decode().strip() == "error: interrupted"
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- internal errors

def _boom(*args, **kwargs):
    raise ValueError(f"cannot convert {MARKER} patient text")


def test_an_internal_error_shows_only_type_and_place(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EHRKIT_DEBUG", raising=False)
    monkeypatch.setattr(rio.RecordWriter, "write", _boom)
    code = run(["synth", "notes", "-n", "5", "-o", str(tmp_path / "out.jsonl")])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.splitlines()[0] == \
        f"error: internal error (ValueError at test_errors.py:{_boom.__code__.co_firstlineno + 1})"
    assert "EHRKIT_DEBUG=1" in captured.err
    assert MARKER not in captured.err and "Traceback" not in captured.err
    assert os.listdir(tmp_path) == []


def test_ehrkit_debug_raises_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("EHRKIT_DEBUG", "1")
    monkeypatch.setattr(rio.RecordWriter, "write", _boom)
    with pytest.raises(ValueError, match=MARKER):
        run(["synth", "notes", "-n", "5", "-o", str(tmp_path / "out.jsonl")])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("debug", [False, True])
def test_ehrkit_debug_shows_a_traceback(tmp_path, ehrkit_env, debug):
    script = ("import ehrkit.io as rio\n"
              "def boom(*a, **k): raise ValueError('" + MARKER + "')\n"
              "rio.RecordWriter.write = boom\n"
              "from ehrkit.cli import main\n"
              "main()\n")
    env = {**ehrkit_env, "EHRKIT_DEBUG": "1"} if debug else ehrkit_env
    done = subprocess.run([sys.executable, "-c", script, "synth", "notes", "-n", "5", "-o",
                           "out.jsonl"], check=False, cwd=tmp_path, env=env, capture_output=True,
                          timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 1, err
    if debug:
        assert "Traceback (most recent call last)" in err and f"ValueError: {MARKER}" in err
    else:
        assert "Traceback" not in err and MARKER not in err
        assert err.startswith("error: internal error (ValueError at <string>:2)")
    assert os.listdir(tmp_path) == []


def test_keyboard_interrupt_in_process_exits_130(tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rio.RecordWriter, "write", interrupt)
    assert run(["synth", "notes", "-n", "5", "-o", str(tmp_path / "out.parquet")]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted"  # old click adds a newline
    assert os.listdir(tmp_path) == []


def test_an_os_error_names_the_path_only(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code = run(["synth", "notes", "-n", "5", "-o", str(tmp_path / "file" / "out.jsonl")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"error: {tmp_path / 'file'}: ")
    assert "Traceback" not in err


def test_an_ehrkit_error_in_process(tmp_path, capsys):
    (tmp_path / "in.jsonl").write_text(json.dumps({"body": MARKER}) + "\n")
    assert run(["notes", "clean", str(tmp_path / "in.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "field 'text' not found; fields present: body" in err and MARKER not in err
