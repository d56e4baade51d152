"""What produced a model: `ehrkit.json` and a model card (`README.md`) in its run directory.

One function, shared by pretrain, finetune and multitask, so every model directory answers
the same questions: which command and versions, which data (by fingerprint, never content),
which settings, on what hardware, how fast, and how well.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ehrkit import __version__
from ehrkit.io import atomic_path

LIBRARIES = ("torch", "transformers", "tokenizers", "polars", "pyarrow", "numpy", "scikit-learn")


@dataclass
class RunInfo:
    kind: str  # pretrain, finetune, multitask
    objective: str
    settings: dict
    inputs: list  # file paths ("-" for stdin)
    data: dict = field(default_factory=dict)  # summary of the data seen (counts, splits)
    exclusion: str | None = None  # a file of ids kept out of training
    hardware: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)
    card: dict = field(default_factory=dict)  # model card text: intended use, limits


def fingerprint(path: str) -> dict:
    """sha256 and size of a file or of every file in a directory (never its content)."""
    target = Path(path)
    if path == "-" or not target.exists():
        return {"path": path}
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    digest, size = hashlib.sha256(), 0
    for file in files:
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    return {"path": path, "sha256": digest.hexdigest(), "bytes": size}


def versions() -> dict:
    found = {"ehrkit": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write(run_dir: Path, info: RunInfo, argv: list[str] | None = None) -> None:
    """Write ehrkit.json and README.md into the run directory, each atomically."""
    record = {
        "format": "ehrkit.run", "version": 1, "kind": info.kind, "objective": info.objective,
        "command": ["ehrkit", *(sys.argv[1:] if argv is None else argv)],
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(), "settings": info.settings,
        "inputs": [fingerprint(p) for p in info.inputs],
        "exclusion": fingerprint(info.exclusion) if info.exclusion else None,
        "data": info.data, "hardware": info.hardware, "result": info.result,
    }
    with atomic_path(run_dir / "ehrkit.json") as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1, default=str) + "\n")
    with atomic_path(run_dir / "README.md") as tmp:
        Path(tmp).write_text(model_card(record, info.card))


def model_card(record: dict, card: dict) -> str:
    data = record["data"]
    lines = [f"# {card.get('title', record['objective'] + ' model')}", "",
             f"Produced by `{' '.join(record['command'])}` (ehrkit {record['versions']['ehrkit']}, "
             f"{record['created']}).", "",
             "## Objective", "", card.get("objective", record["objective"]), "",
             "## Data", ""]
    lines += [f"- {key}: {value}" for key, value in data.items()] or ["- (not recorded)"]
    lines += [f"- input `{i['path']}`" + (f", sha256 {i['sha256'][:16]}..." if "sha256" in i else "")
              for i in record["inputs"]]
    if record["exclusion"]:
        lines.append(f"- excluded ids from `{record['exclusion']['path']}`")
    lines += ["", "## Settings", ""] + [f"- {k}: {v}" for k, v in record["settings"].items()]
    lines += ["", "## Results", ""] + [f"- {k}: {v}" for k, v in record["result"].items()]
    lines += ["", "## Intended use", "", card.get("intended_use", "Research on clinical data; "
              "not validated for clinical decisions."), "",
              "## Limits", "", card.get("limits", "Trained on the data above only; performance "
              "elsewhere (another hospital, period or population) is unknown until measured."), ""]
    return "\n".join(lines)
