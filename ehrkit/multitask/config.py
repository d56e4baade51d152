"""The tasks of a multitask run, from the command line or a TOML file.

On the command line a task is one string, `NAME=TYPE:PATH[,PATH...]`, optionally followed by
`key=value` settings separated by spaces (quote the whole string in the shell):

    --task ncbi=ner:train.tsv,devel.tsv,test.tsv
    --task 'sim=regression:pairs.jsonl label=similarity batch_size=40'

In a TOML file each task is a table under `[tasks]`; relative paths are read from the file's
own directory, and `[defaults]` sets what every task does not set itself:

    [defaults]
    batch_size = 32

    [tasks.ncbi]
    type = "ner"
    data = ["train.tsv", "devel.tsv", "test.tsv"]

    [tasks.sim]
    type = "regression"
    data = "pairs.jsonl"
    text = ["sentence_a", "sentence_b"]

Types and their heads (MT-Clinical BERT's three, plus multi-label):
- `ner`: a token head (a tag per word: CoNLL/BIO files, or tokens + tags, or text + spans);
- `classification` (or `binary`, `multiclass`): a [CLS] head, softmax (binary: one sigmoid);
- `regression`: a [CLS] head with one output, squared error (e.g. similarity 0-5);
- `multilabel`: a [CLS] head with a sigmoid per label (a list field or several fields).

A [CLS] task reads one text (`text`, default the field `text`) or a sentence pair (`text` names
two fields; by default `sentence_a` and `sentence_b`, or `sentence1` and `sentence2`, when the
records have them), encoded `[CLS] a [SEP] b [SEP]` with segment ids 0 and 1.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ehrkit.errors import UsageError

TYPES = ("ner", "classification", "binary", "multiclass", "regression", "multilabel")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
PAIRS = (("sentence_a", "sentence_b"), ("sentence1", "sentence2"))
# When a task names no label field: the first of these the records have.
LABEL_DEFAULTS = {"regression": ("label", "similarity", "score"),
                  "ner": (),
                  "*": ("label", "entailment", "gold_label")}
SYNTAX = "NAME=TYPE:PATH[,PATH...] [key=value ...]"


@dataclass(frozen=True)
class TaskConfig:
    name: str
    type: str
    data: tuple = ()
    label: tuple = ()  # label field(s); default: LABEL_DEFAULTS
    text: tuple = ()  # one text field or two (a pair); default: a pair's fields, else "text"
    tokens: str = "tokens"  # ner: the words
    tags: str = "tags"  # ner: one tag per word
    scheme: str = "bio"  # ner tags (MT-Clinical BERT used BILOU)
    positive: str | None = None  # binary: the positive value
    batch_size: int | None = None  # per device; default: the run's --batch-size
    max_length: int | None = None  # tokens; default 128 for pairs, else min(512, positions)
    stride: int = 32  # ner: tokens shared by consecutive windows
    format: str | None = None  # jsonl, parquet or conll; default from the extension
    split_field: str = "split"
    group_field: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    weight: float = 1.0  # the sum schedule: this task's loss is multiplied by it

    @property
    def head(self) -> str:
        return "token" if self.type == "ner" else "cls"

    @property
    def finetune_task(self) -> str:
        """The task as ehrkit.finetune names it (classification is decided from the labels)."""
        return {"classification": "auto"}.get(self.type, self.type)


_KEYS = {f.name: f for f in fields(TaskConfig)} | {"batch": None, "fields": None}
_ALIASES = {"batch": "batch_size", "fields": "text"}
_TUPLES = ("data", "label", "text")


def parse_task(text: str) -> TaskConfig:
    """A TaskConfig from its command-line string (see the module's docstring)."""
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = []
    head, _, path = parts[0].partition(":") if parts else ("", "", "")
    name, _, kind = head.partition("=")
    if not (name and kind and path):
        raise UsageError(f"--task {text!r}: write {SYNTAX}",
                         hint="e.g. --task ncbi=ner:train.tsv,devel.tsv or "
                              "--task 'sim=regression:pairs.jsonl label=similarity'")
    settings: dict = {"data": path.split(",")}
    for item in parts[1:]:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"--task {name}: {item!r} is not key=value", hint=f"write {SYNTAX}")
        settings[key] = value.split(",") if _ALIASES.get(key, key) in _TUPLES else value
    return make(name, kind, settings, f"--task {name}")


def load_toml(path: str | Path) -> list[TaskConfig]:
    """Every task of a TOML file, in the order written."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such task file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not valid TOML ({err})") from None
    tasks, defaults = document.get("tasks"), document.get("defaults", {})
    if not isinstance(tasks, dict) or not tasks:
        raise UsageError(f"{path}: no [tasks.NAME] tables", hint="see `ehrkit multitask --help`")
    out = []
    for name, table in tasks.items():
        if not isinstance(table, dict) or "type" not in table or "data" not in table:
            raise UsageError(f"{path}: [tasks.{name}] needs type and data")
        settings = {**defaults, **table}
        data = settings["data"]
        data = [data] if isinstance(data, str) else list(data)
        settings["data"] = [str(p if Path(p).is_absolute() else path.parent / p) for p in data]
        out.append(make(name, settings.pop("type"), settings, f"{path}: [tasks.{name}]"))
    return out


def make(name: str, kind: str, settings: dict, where: str) -> TaskConfig:
    """A checked TaskConfig from string or TOML settings."""
    if not NAME.match(name):
        raise UsageError(f"{where}: task name {name!r}: use letters, digits, _ and -, "
                         "starting with a letter")
    if kind not in TYPES:
        raise UsageError(f"{where}: type {kind!r}: use one of {', '.join(TYPES)}")
    values: dict = {}
    for key, value in settings.items():
        key = _ALIASES.get(key, key)
        if key not in _KEYS or key in ("name", "type"):
            known = sorted(k for k in _KEYS if k not in ("name", "type"))
            raise UsageError(f"{where}: unknown setting {key!r}", hint=f"known: {', '.join(known)}")
        values[key] = _coerce(key, value, where)
    config = TaskConfig(name=name, type=kind, **values)
    if not config.data:
        raise UsageError(f"{where}: no data files")
    if len(config.text) > 2:
        raise UsageError(f"{where}: text takes one field or two (a sentence pair)")
    if config.scheme not in ("bio", "bilou"):
        raise UsageError(f"{where}: scheme {config.scheme!r}: use bio or bilou")
    return config


def _coerce(key: str, value, where: str):
    kind = _KEYS[key].type
    if key in _TUPLES:
        return tuple(str(v) for v in ([value] if isinstance(value, str) else value) if str(v))
    try:
        if "int" in kind:
            number = int(value)
            if number < (0 if key == "stride" else 1):
                raise ValueError
            return number
        if "float" in kind:
            number = float(value)
            if number < 0:
                raise ValueError
            return number
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {key}={value!r} must be a positive number") from None
    return None if value in (None, "") else str(value)


def check_names(tasks: list[TaskConfig]) -> list[TaskConfig]:
    if not tasks:
        raise UsageError("multitask needs at least one --task (or --tasks-file)",
                         hint=f"--task {SYNTAX}")
    seen = set()
    for task in tasks:
        if task.name in seen:
            raise UsageError(f"task {task.name!r} is given twice")
        seen.add(task.name)
    return tasks


def with_defaults(task: TaskConfig, batch_size: int) -> TaskConfig:
    return task if task.batch_size else replace(task, batch_size=batch_size)


