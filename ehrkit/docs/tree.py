"""The CLI as data: the click command tree behind the typer app, as Node and Param records."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROG = "ehrkit"


@dataclass
class Param:
    name: str  # a word for the value in zsh's completion messages
    flags: list[str]  # empty for a positional argument
    metavar: str  # as --help shows it, e.g. PATH or <jsonl|parquet>
    help: str  # as --help shows it, with [default: ...]
    takes_value: bool
    repeatable: bool
    kind: str  # how its value completes: choice, file, dir or none
    choices: list[str]


@dataclass
class Node:
    path: list[str]  # [] for ehrkit itself, ["notes", "clean"] for `ehrkit notes clean`
    help: str
    usage: str  # after the command path, e.g. "[OPTIONS] COMMAND [ARGS]..."
    params: list[Param]
    children: list[Node] = field(default_factory=list)

    @property
    def page(self) -> str:
        return "-".join([PROG, *self.path])

    @property
    def summary(self) -> str:
        return " ".join(paragraphs(self.help)[0].split()).rstrip(".") if self.help else ""


def load_tree() -> Node:
    """The command tree of the typer app (imported here because cli must not import us)."""
    import typer

    from ehrkit.cli import app

    cmd = typer.main.get_command(app)
    return _node(cmd, cmd.context_class(cmd, info_name=PROG, **cmd.context_settings), [])


def _node(cmd, ctx, path: list[str]) -> Node:
    children = []
    for name in cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else []:
        sub = cmd.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx, **sub.context_settings)
            children.append(_node(sub, sub_ctx, [*path, name]))
    # Usage pieces, not get_usage(): that one wraps at the terminal's width.
    usage = " ".join(cmd.collect_usage_pieces(ctx))
    params = [_param(p, ctx) for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
    return Node(path, (cmd.help or "").split("\f")[0].strip(), usage, params, children)


def _param(p, ctx) -> Param:
    option = p.param_type_name == "option"
    term, help_ = p.get_help_record(ctx) or (p.name.upper(), "")  # click's Argument has none
    # Short flags first: click builds the help option's flags from a set, in hash order.
    flags = sorted([*p.opts, *p.secondary_opts], key=lambda f: f[:2] == "--") if option else []
    words = term.split(" ")
    metavar = " ".join(words[1 + max(i for i, w in enumerate(words) if w.startswith("-")):]) \
        if option else term
    counts = bool(getattr(p, "count", False))
    takes_value = not option or not (getattr(p, "is_flag", False) or counts)
    try:  # a custom autocompletion callback may need a fully parsed context
        items = p.shell_complete(ctx, "") if takes_value else []
    except Exception:  # noqa: BLE001
        items = []
    choices = [i.value for i in items if i.type == "plain"]
    repeatable = counts or getattr(p, "multiple", False) or (not option and p.nargs == -1)
    name = max(p.opts, key=len).lstrip("-") if option else p.name
    return Param(name, flags, metavar, help_, takes_value, repeatable,
                 _kind(choices, {i.type for i in items}, metavar, option), choices)


def _kind(choices: list[str], types: set[str], metavar: str, option: bool) -> str:
    if choices:
        return "choice"
    if "dir" in types or "DIR" in metavar:
        return "dir"
    # Paths are often typed str with a PATH metavar; positional inputs are files by convention.
    return "file" if "file" in types or not option or re.search("PATH|FILE", metavar) else "none"


def walk(node: Node):
    yield node
    for child in node.children:
        yield from walk(child)


def paragraphs(text: str) -> list[str]:
    return [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def split_examples(text: str) -> tuple[str, str]:
    """A docstring's text before its "Examples:" line, and the dedented block after it."""
    parts = re.split(r"^[ \t]*Examples?:[ \t]*$", text, maxsplit=1, flags=re.MULTILINE)
    return parts[0].strip(), textwrap.dedent(parts[1]).strip("\n") if len(parts) > 1 else ""


# --- man pages ----------------------------------------------------------------------------

