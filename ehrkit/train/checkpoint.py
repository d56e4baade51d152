"""Complete, atomic training checkpoints in safetensors and JSON (nothing is pickled).

A checkpoint directory holds the model weights, the optimizer's tensors and settings, the
scheduler, the data position, the loop's counters and every random generator's state, so a
run killed at any moment resumes from its last checkpoint to exactly the same final weights.
It is written to a temporary directory and renamed: a kill mid-write leaves the previous one.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from ehrkit.errors import DataError, UsageError
from ehrkit.io import atomic_path

FORMAT, VERSION = "ehrkit.checkpoint", 1


def save(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         scheduler, state: dict) -> None:
    with atomic_path(directory) as tmp:
        tmp = Path(tmp)
        tmp.mkdir()
        save_model(model, str(tmp / "model.safetensors"))
        tensors, groups = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        save_file(_rng_tensors(), str(tmp / "rng.safetensors"))
        meta = {"format": FORMAT, "version": VERSION, "state": state,
                "optimizer_groups": groups, "scheduler": scheduler.state_dict(),
                "python_random": _python_state(), "numpy_random": _numpy_state()}
        (tmp / "trainer.json").write_text(json.dumps(meta, indent=1) + "\n")


def load(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         scheduler, device: torch.device) -> dict:
    """Restore everything saved by `save`; return the loop's state."""
    meta_path = directory / "trainer.json"
    if not meta_path.is_file():
        raise DataError(f"{directory}: no checkpoint to resume from",
                        hint="run without --resume to start a new run")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise DataError(f"{directory}: not an ehrkit checkpoint of version {VERSION}")
    load_model(model, str(directory / "model.safetensors"), device=str(device))
    tensors = load_file(str(directory / "optimizer.safetensors"), device=str(device))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer_groups"]))
    scheduler.load_state_dict(meta["scheduler"])
    _restore_rng(load_file(str(directory / "rng.safetensors")), meta)
    return meta["state"]


def _flatten_optimizer(state_dict: dict) -> tuple[dict, list]:
    tensors = {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{name}"] = value.detach().contiguous()
    return tensors, state_dict["param_groups"]


def _unflatten_optimizer(tensors: dict, groups: list) -> dict:
    state: dict = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": groups}


def _rng_tensors() -> dict:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, value in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = value
    return tensors


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _numpy_state() -> list:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _restore_rng(tensors: dict, meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python_random"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy_random"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def promote_best(run_dir: Path, save) -> None:
    """The best model (kept in RUN/best by the loop) becomes the run directory's model; with no
    validation there is no best, and `save(run_dir)` writes the last one."""
    best = run_dir / "best"
    if best.is_dir():
        for item in best.iterdir():
            shutil.copy2(item, run_dir / item.name)
        shutil.rmtree(best)
    else:
        save(run_dir)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run needs an empty directory; --resume needs the run's checkpoint."""
    if resume and not (run_dir / "checkpoint").exists():
        raise UsageError(f"{run_dir}: nothing to resume (no checkpoint/)")
    if not resume and run_dir.exists() and any(run_dir.iterdir()):
        raise UsageError(f"{run_dir}: the run directory exists and is not empty",
                         hint="continue it with --resume, or choose another -o")
