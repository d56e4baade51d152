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


def torch_setup(args, name: str):
    """Shared by the model benchmarks: quiet libraries, --threads, the device and the working
    directory, and a line saying what the machine is. Returns (device, workdir)."""
    import os
    import tempfile
    from pathlib import Path

    import torch

    from ehrkit import log
    from ehrkit.runtime import quiet_libraries

    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    log.configure(quiet=True)  # ehrkit's own summary line: the benchmark's table says it all
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    workdir = Path(args.dir or tempfile.mkdtemp(prefix=f"ehrkit-bench-{name}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), device {device}" + (f" ({torch.cuda.get_device_name()}, bf16)"
                                          if device == "cuda" else " (fp32)"))
    return device, workdir
