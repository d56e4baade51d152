"""The command itself: help, version, `python -m ehrkit`, and instant startup."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pytest
import typer

from ehrkit import __version__
from ehrkit.cli import app, command_for, run

HEAVY = ("torch", "transformers", "spacy", "sklearn")


def _commands(command=None, path=()):
    """Every command path in the CLI, groups included: ("notes",), ("notes", "clean"), ..."""
    command = command or typer.main.get_command(app)
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield (*path, name)
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands())
GROUPS = {g.name: g.typer_instance.info.help.splitlines()[0] for g in app.registered_groups}


def test_the_groups_are_registered():
    assert {"notes", "synth"} <= set(GROUPS)
    assert ("notes", "clean") in COMMANDS and ("synth", "notes") in COMMANDS


def test_help_lists_each_group_with_a_one_line_summary(ehrkit):
    done = ehrkit("--help", env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "Usage: ehrkit" in out
    for name, summary in GROUPS.items():
        assert summary, f"group {name} has no summary"
        pattern = rf"^\W*{re.escape(name)}\s{{2,}}{re.escape(summary)}\W*$"
        assert re.search(pattern, out, flags=re.M), f"{name}: {summary!r} not in\n{out}"


def test_help_is_fast(ehrkit):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        assert ehrkit("--help").returncode == 0
        times.append(time.perf_counter() - start)
    assert min(times) < 1.0, times


def test_help_does_not_import_heavy_libraries(ehrkit_env):
    code = ("import sys; from ehrkit.cli import run; run(['--help']); "
            f"bad=[m for m in {HEAVY!r} if m in sys.modules]; assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], env=ehrkit_env, capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.parametrize("argv", [["ehrkit"], [sys.executable, "-m", "ehrkit"]])
def test_version(ehrkit_env, argv):
    done = subprocess.run([*argv, "--version"], env=ehrkit_env, capture_output=True, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout.decode(), done.stderr) == \
        (0, f"ehrkit {__version__}\n", b"")


def test_version_in_process(capsys):
    assert run(["--version"]) == 0
    assert capsys.readouterr().out == f"ehrkit {__version__}\n"


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(capsys, monkeypatch, path, flag):
    monkeypatch.setenv("COLUMNS", "200")
    assert run([*path, flag]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert f"Usage: ehrkit {' '.join(path)}" in captured.out
    assert len(captured.out.splitlines()) > 3


def _help(capsys, command, path) -> str:
    command.main(args=[*path, "--help"], prog_name="ehrkit", standalone_mode=False)
    return capsys.readouterr().out


@pytest.mark.parametrize("path", [p for p in COMMANDS if len(p) <= 2], ids=" ".join)
def test_a_run_builds_only_its_branch_and_it_reads_the_same(capsys, monkeypatch, path):
    """run() builds the click command for the named group only (a fifth of a short run's
    time otherwise): its help, usage line included, equals the whole tree's."""
    branch = command_for(list(path))
    assert set(branch.commands) == {path[0]}
    monkeypatch.setenv("COLUMNS", "200")
    assert _help(capsys, branch, path) == _help(capsys, typer.main.get_command(app), path)


@pytest.mark.parametrize("argv", [[], ["--help"], ["--version"], ["notse", "clean"]])
def test_without_a_known_name_the_whole_tree_is_built(argv):
    assert set(command_for(argv).commands) == set(GROUPS) | {c.name for c in app.registered_commands}


def test_a_mistyped_command_is_a_usage_error(capsys):
    assert run(["notse", "clean"]) == 2
    assert "No such command 'notse'" in capsys.readouterr().err


def test_python_m_ehrkit_runs_commands(ehrkit_env, tmp_path):
    done = subprocess.run([sys.executable, "-m", "ehrkit", "synth", "notes", "-n", "3", "-q"],
                          env=ehrkit_env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    assert len(done.stdout.splitlines()) == 3


@pytest.mark.skipif(not shutil.which("script"), reason="needs util-linux `script` for a terminal")
@pytest.mark.parametrize("flags, bar", [((), True), (("-q",), False)])
def test_progress_bar_only_on_a_terminal_and_not_with_quiet(tmp_path, ehrkit_env, flags, bar):
    """On a terminal (a pty from `script`) long work shows a bar on stderr; -q silences it."""
    command = " ".join(["ehrkit", "synth", "notes", "-n", "30000", "-o", "x.jsonl", *flags])
    done = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=tmp_path, env=ehrkit_env,
                          capture_output=True, timeout=120)
    assert done.returncode == 0
    screen = done.stdout.decode(errors="replace")
    assert ("━" in screen) is bar
    assert ("synth notes:" in screen) is (not flags)


def test_no_progress_bar_when_stderr_is_not_a_terminal(ehrkit):
    done = ehrkit("synth", "notes", "-n", "3000", "-o", "x.jsonl")
    assert done.returncode == 0
    assert done.stderr.decode().strip().startswith("synth notes: 3000 notes")
    assert "━" not in done.stderr.decode()


def test_imports_without_gc_restores_the_collector():
    import gc

    from ehrkit.cli.options import imports_without_gc

    assert gc.isenabled()
    with imports_without_gc():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with imports_without_gc():
            pass
        assert not gc.isenabled()  # a collector paused by someone else stays paused
    finally:
        gc.enable()
