"""Shared by the benchmark scripts: run a command in a fresh child and measure it."""

from __future__ import annotations

import subprocess
import sys


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, the largest process) of a command, in a fresh child."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True); "
             "print(time.perf_counter() - t, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True,
                         text=True).stdout.split()
    return float(out[-2]), float(out[-1])


def ehrkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "ehrkit", *args]
