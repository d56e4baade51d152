"""The README's command examples run, as written, in a scratch directory."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """The `ehrkit ...` lines of the sh blocks in the README's Commands section."""
    text = README.read_text()
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("ehrkit ")]


def test_readme_has_command_examples():
    commands = readme_commands()
    assert any(c.startswith("ehrkit notes clean") for c in commands)
    assert any(c.startswith("ehrkit synth notes") for c in commands)


def test_readme_commands_run(tmp_path):
    setup = "ehrkit synth notes -n 300 --seed 2 -o notes.jsonl -q"
    script = "\n".join(["set -euo pipefail", setup, *readme_commands()])
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
