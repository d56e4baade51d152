"""roff man pages, one per command and group."""

from __future__ import annotations

import re

from ehrkit import __version__
from ehrkit.docs.tree import PROG, Node, Param, paragraphs, split_examples, walk
from ehrkit.errors import EXIT_DATA, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE


def _esc(text: str) -> str:
    """Escape for roff; \\- keeps option names ASCII for copying and searching."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in text)


def _line(text: str) -> str:
    return "\\&" + text if text[:1] in (".", "'") else text  # else read as a roff request


def _prose(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"\\fB\1\\fR", _esc(" ".join(text.split())))


def _literal(text: str) -> list[str]:
    return [".nf", *(_line(_esc(x)) for x in text.split("\n")), ".fi"]


def _text(body: str) -> list[str]:
    out = []
    for para in paragraphs(body):
        # click's \b marks a paragraph that must not be refilled
        literal = para.startswith("\b")
        out += [".PP", *(_literal(para[1:].strip("\n")) if literal else [_line(_prose(para))])]
    return out[1:]


def _items(pairs: list[tuple[str, str]]) -> list[str]:
    return [x for tag, body in pairs for x in (".TP", _line(tag), *([_line(body)] if body else []))]


def _term(p: Param) -> str:
    flags = ", ".join(f"\\fB{_esc(f)}\\fR" for f in p.flags)
    return " ".join(x for x in (flags, p.metavar and f"\\fI{_esc(p.metavar)}\\fR") if x)


def _cmd(node: Node) -> str:
    return f"\\fB{_esc(' '.join([PROG, *node.path]))}\\fR"


def _refs(pages: list[str]) -> list[str]:
    return [",\n".join(f"\\fB{_esc(p)}\\fR(1)" for p in pages)]


EXIT_STATUS = [
    (EXIT_OK, "Success, also when the reader of a pipe closes it early (as in \\fB| head\\fR)."),
    (EXIT_DATA, "Data or runtime error; the message names the file, row and field, not the data."),
    (EXIT_USAGE, "Usage error: unknown command or option, or an invalid option value."),
    (EXIT_INTERRUPTED, "Interrupted (SIGINT, Ctrl\\-C); no partial output is left behind."),
]
ROOT_SECTIONS = {
    "EXIT STATUS": _items([(f"\\fB{code}\\fR", text) for code, text in EXIT_STATUS]),
    "ENVIRONMENT": _items([("\\fBEHRKIT_DEBUG\\fR=1", "Show the full traceback of an error.")]),
}


def man_page(node: Node, root: Node) -> str:
    body, examples = split_examples(node.help)
    below = list(walk(node))[1:]
    parent = ["-".join([PROG, *node.path[:-1]])] if len(node.path) > 1 else []
    sections = {
        "NAME": [f"{_esc(node.page)} \\- {_prose(node.summary)}"],
        "SYNOPSIS": [f"{_cmd(node)} {_esc(node.usage)}"],
        "DESCRIPTION": _text(body),
        "COMMANDS": _items([(_cmd(n), _prose(n.summary)) for n in below]),
        "OPTIONS": _items([(_term(p), _prose(p.help)) for p in node.params if p.flags]),
        "ARGUMENTS": _items([(_term(p), _prose(p.help)) for p in node.params if not p.flags]),
        "EXAMPLES": [".RS", *_literal(examples), ".RE"] if examples else [],
        **(ROOT_SECTIONS if node is root else {}),
        "SEE ALSO": _refs([n.page for n in below] if node is root
                          else [root.page, *parent, *(n.page for n in node.children)]),
    }
    # No date in .TH: regenerating an unchanged CLI gives identical files. Left-adjusted
    # (.ad l), because long option values and SEE ALSO lists stretch badly when justified.
    lines = [f'.TH "{_esc(node.page.upper())}" "1" "" "{PROG} {__version__}" "{PROG} manual"',
             ".ad l"]
    lines += [x for name, text in sections.items() if text for x in (f".SH {name}", *text)]
    return "\n".join(lines) + "\n"


# --- completions --------------------------------------------------------------------------
