"""Generate man pages and shell completions from the CLI itself (DESIGN.md section 8, rule 10).

    python -m ehrkit.docs            # (re)write man/man1/*.1 and completions/*
    python -m ehrkit.docs --check    # exit 1 listing stale files

Everything comes from the click command tree behind the typer app, so a new command is
documented by its docstring and options alone. Output has no dates, so a diff means the CLI
changed. Completions are static tables: completing a word never starts Python. Only the
click API that both click and the copy vendored in newer typer share is used (get_params,
get_help_record, shell_complete, list_commands), duck-typed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ehrkit.docs.completions import bash, fish, zsh
from ehrkit.docs.man import man_page
from ehrkit.docs.tree import PROG, ROOT, Node, load_tree, split_examples, walk

__all__ = ["Node", "ROOT", "load_tree", "main", "render", "split_examples", "stale_files", "walk",
           "write"]


# --- generate and check -------------------------------------------------------------------

def render(root: Node | None = None) -> dict[str, str]:
    """Every generated file's text, by path relative to the repository root."""
    root = root or load_tree()
    return {**{f"man/man1/{n.page}.1": man_page(n, root) for n in walk(root)},
            f"completions/{PROG}.bash": bash(root), f"completions/_{PROG}": zsh(root),
            f"completions/{PROG}.fish": fish(root)}


def _orphans(base: Path, files: dict[str, str]) -> list[str]:
    # Pages of removed commands. Only our own name pattern: nothing else there is touched.
    found = (p.relative_to(base).as_posix() for p in base.glob(f"man/man1/{PROG}*.1"))
    return sorted(rel for rel in found if rel not in files)


def stale_files(base: Path = ROOT) -> list[str]:
    """Generated files that are missing, differ from the CLI, or belong to a removed command."""
    files = render()
    changed = [rel for rel, text in files.items()
               if not (base / rel).is_file() or (base / rel).read_text(encoding="utf-8") != text]
    return changed + _orphans(base, files)


def write(base: Path = ROOT) -> list[str]:
    files = render()
    for rel in _orphans(base, files):
        (base / rel).unlink()
    for rel, text in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(text, encoding="utf-8")
    return list(files)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--check"]):
        print("usage: python -m ehrkit.docs [--check]", file=sys.stderr)
        return 2
    if not args:
        print(f"wrote {len(write())} files under man/man1 and completions", file=sys.stderr)
        return 0
    stale = stale_files()
    for rel in stale:
        print(f"stale: {rel}", file=sys.stderr)
    if stale:
        print("man pages or completions are out of date: run `make docs`", file=sys.stderr)
    return 1 if stale else 0

