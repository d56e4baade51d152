"""Man pages and shell completions are generated from the CLI and must match it
(DESIGN.md section 8, rule 10). When a test here fails after a CLI change: `make docs`."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from ehrkit import __version__, docs
from ehrkit.docs import man as man_pages
from ehrkit.docs import tree as cli_tree

TREE = docs.load_tree()
NODES = list(docs.walk(TREE))
LEAVES = [n for n in NODES if not n.children]
MAN = docs.ROOT / "man" / "man1"
COMPLETIONS = docs.ROOT / "completions"


def _name(node: docs.Node) -> str:
    return " ".join(["ehrkit", *node.path])


def test_generated_docs_are_current():
    stale = docs.stale_files()
    assert not stale, (
        f"man pages or completions are stale: {', '.join(stale)}\n"
        "run `make docs` (python -m ehrkit.docs) and commit the result")


def test_output_does_not_depend_on_the_hash_seed():
    # set iteration order changes with PYTHONHASHSEED; a page that did would flap in --check
    code = ("import ehrkit.docs as d, hashlib; "
            "print(hashlib.sha1(repr(d.render()).encode()).digest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2", "3", "4")}
    assert len(digests) == 1


def test_check_finds_missing_changed_and_orphaned_files(tmp_path):
    assert set(docs.stale_files(tmp_path)) == set(docs.render(TREE))
    docs.write(tmp_path)
    assert docs.stale_files(tmp_path) == []
    (tmp_path / "completions/ehrkit.bash").write_text("# edited by hand\n")
    (tmp_path / "man/man1/ehrkit-removed-command.1").write_text(".TH OLD 1\n")
    assert docs.stale_files(tmp_path) == ["completions/ehrkit.bash",
                                          "man/man1/ehrkit-removed-command.1"]
    docs.write(tmp_path)
    assert docs.stale_files(tmp_path) == []


def test_check_mode_exit_codes(monkeypatch, capsys):
    assert docs.main(["--bogus"]) == 2
    monkeypatch.setattr(docs, "stale_files", lambda: ["man/man1/ehrkit.1"])
    assert docs.main(["--check"]) == 1
    assert "stale: man/man1/ehrkit.1" in capsys.readouterr().err
    monkeypatch.setattr(docs, "stale_files", list)
    assert docs.main(["--check"]) == 0


@pytest.mark.parametrize("node", NODES, ids=_name)
def test_every_command_has_a_page(node):
    assert (MAN / f"{node.page}.1").is_file(), f"no man page for `{_name(node)}`: run `make docs`"


@pytest.mark.parametrize("node", NODES, ids=_name)
def test_help_has_a_one_line_summary(node):
    first = node.help.split("\n\n")[0].strip()
    assert first and "\n" not in first and len(first) <= 100, (
        f"`{_name(node)}`: the help must start with a one-line summary (under 100 characters) "
        "followed by a blank line")


@pytest.mark.parametrize("node", LEAVES, ids=_name)
def test_docstring_has_examples(node):
    _, examples = docs.split_examples(node.help)
    assert "ehrkit " in examples, f"`{_name(node)}`: the docstring needs an 'Examples:' block"


@pytest.mark.parametrize("node", NODES, ids=_name)
def test_page_documents_every_option(node):
    page = (MAN / f"{node.page}.1").read_text()
    for param in node.params:
        for flag in param.flags:
            assert f"\\fB{man_pages._esc(flag)}\\fR" in page, f"{flag} missing from {node.page}.1"
    _, examples = docs.split_examples(node.help)
    assert all(man_pages._esc(line) in page for line in examples.splitlines())


def test_root_page_has_exit_status_environment_and_all_pages():
    page = (MAN / "ehrkit.1").read_text()
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "ENVIRONMENT",
                    "SEE ALSO"):
        assert f".SH {section}\n" in page
    assert "EHRKIT_DEBUG" in page
    for code in ("0", "1", "2", "130"):
        assert f".TP\n\\fB{code}\\fR\n" in page
    for node in NODES[1:]:
        assert f"\\fB{man_pages._esc(node.page)}\\fR(1)" in page


@pytest.mark.skipif(not shutil.which("groff"), reason="groff is not installed")
@pytest.mark.parametrize("node", NODES, ids=_name)
def test_page_renders_without_warnings(node):
    done = subprocess.run(["groff", "-man", "-Tutf8", "-ww", MAN / f"{node.page}.1"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert f"ehrkit {__version__}" in done.stdout  # the page footer


def _bash_complete(*words: str, cwd=None) -> list[str]:
    script = (f"source {shlex.quote(str(COMPLETIONS / 'ehrkit.bash'))}\n"
              f"COMP_WORDS=({' '.join(map(shlex.quote, words))}); COMP_CWORD={len(words) - 1}\n"
              '_ehrkit; printf "%s\\n" "${COMPREPLY[@]}"')
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=cwd,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completes_commands_options_and_choices(tmp_path):
    assert "notes" in _bash_complete("ehrkit", "no")
    assert set(_bash_complete("ehrkit", "")) == {c.path[-1] for c in TREE.children}
    assert _bash_complete("ehrkit", "notes", "clean", "--pro") == ["--profile"]
    assert _bash_complete("ehrkit", "notes", "clean", "--profile", "") == [
        "default", "clinicalbert", "clinicalbert-pretrain"]
    assert _bash_complete("ehrkit", "notes", "clean", "--deid", "=", "st") == ["strip"]
    # an option's value is never taken for a subcommand
    assert _bash_complete("ehrkit", "notes", "clean", "--text-field", "synth", "--pro") == [
        "--profile"]
    (tmp_path / "in.jsonl").write_text("{}\n")
    assert _bash_complete("ehrkit", "notes", "clean", "-o", "i", cwd=tmp_path) == ["in.jsonl"]
    assert _bash_complete("ehrkit", "notes", "clean", "", cwd=tmp_path) == ["in.jsonl"]


@pytest.mark.parametrize("shell,file", [("bash", "ehrkit.bash"), ("zsh", "_ehrkit"),
                                        ("fish", "ehrkit.fish")])
def test_completion_syntax(shell, file):
    if not shutil.which(shell):
        pytest.skip(f"{shell} is not installed")
    done = subprocess.run([shell, "-n", COMPLETIONS / file], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed")
def test_fish_completes_commands_options_and_choices():
    def complete(line: str) -> list[str]:
        script = f"source {COMPLETIONS / 'ehrkit.fish'}; complete -C {shlex.quote(line)}"
        done = subprocess.run(["fish", "-c", script], capture_output=True, text=True,
                              check=False)
        return [row.split("\t")[0] for row in done.stdout.splitlines()]

    assert "notes" in complete("ehrkit no")
    assert complete("ehrkit notes clean --pro") == ["--profile"]
    assert sorted(complete("ehrkit notes clean --profile ")) == [
        "clinicalbert", "clinicalbert-pretrain", "default"]


def test_cli_does_not_import_the_generator():
    code = "import sys, ehrkit.cli; sys.exit('ehrkit.docs' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_generic_click_tree():
    """Commands added later need nothing but a docstring: any click tree renders."""
    click = pytest.importorskip("click")

    @click.group(help="Top.")
    def top():
        pass

    @top.group(help="A nested group.")
    def deep():
        pass

    @deep.command(help="Do it.\n\nExamples:\n\n  ehrkit deep do a.txt")
    @click.option("--mode", type=click.Choice(["fast", "slow"]), help="How.")
    @click.option("--into", type=click.Path(file_okay=False), help="Where.")
    @click.argument("files", nargs=-1, type=click.Path())
    def do(**_):
        pass

    tree = cli_tree._node(top, click.Context(top, info_name="ehrkit"), [])
    files = docs.render(tree)
    assert "man/man1/ehrkit-deep-do.1" in files and "man/man1/ehrkit-deep.1" in files
    assert "'deep do|--mode') REPLY='choice:fast slow'" in files["completions/ehrkit.bash"]
    assert "'deep do|--into') REPLY=dir" in files["completions/ehrkit.bash"]
    assert ".nf\nehrkit deep do a.txt\n.fi" in files["man/man1/ehrkit-deep-do.1"]
