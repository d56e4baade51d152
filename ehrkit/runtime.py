"""Devices, precision, seeding and torchrun: the ONLY module that touches torch.cuda or
torch.distributed (DESIGN.md section 4).

Under `torchrun` (RANK and WORLD_SIZE set) a command runs as one rank of a DDP job: NCCL on
GPUs, gloo on CPUs, so a two-process run works on a CPU-only machine. Only rank 0 writes.
Multi-node runs use torchrun's own rendezvous flags (`--nnodes`, `--rdzv-endpoint`).
"""

from __future__ import annotations

import os
import random
import sys
from contextlib import nullcontext
from dataclasses import dataclass

import torch


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    bf16: bool = False  # autocast to bfloat16 (GPUs that support it)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def autocast(self):
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def describe(self) -> dict:
        info = {"device": str(self.device), "world_size": self.world, "bf16": self.bf16,
                "torch": torch.__version__}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        return info


def setup(device: str = "auto", seed: int = 0) -> Runtime:
    """Pick the device, join the torchrun job if there is one, seed everything."""
    quiet_libraries()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            from ehrkit.errors import UsageError

            raise UsageError("--device cuda, but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    bf16 = chosen.type == "cuda" and torch.cuda.is_bf16_supported()
    seed_everything(seed)
    return Runtime(chosen, rank, world, local_rank, bf16)


def teardown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass


def quiet_libraries() -> None:
    """transformers' own progress bars and advice would mix into our stderr."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def all_reduce_sum(value: torch.Tensor, rt: Runtime) -> torch.Tensor:
    if rt.distributed:
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
    return value


def broadcast_flag(flag: bool, rt: Runtime) -> bool:
    """Rank 0's decision (stop early, out of time) for every rank."""
    if not rt.distributed:
        return flag
    tensor = torch.tensor([1 if flag else 0], device=rt.device)
    torch.distributed.broadcast(tensor, src=0)
    return bool(tensor.item())


def barrier(rt: Runtime) -> None:
    if rt.distributed:
        torch.distributed.barrier()


def wrap_ddp(model: torch.nn.Module, rt: Runtime, find_unused: bool = False) -> torch.nn.Module:
    """DDP around the model under torchrun; `find_unused` when a step may leave some
    parameters out (a multitask step trains one head)."""
    if not rt.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [rt.local_rank] if rt.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def cuda_peak_memory(rt: Runtime) -> int | None:
    if rt.device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(rt.device))
    return None


def peak_flops(rt: Runtime) -> float | None:
    """Dense bf16 peak FLOP/s of the GPU, for MFU; None when unknown or on a CPU."""
    if rt.device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(rt.device)
    for key, flops in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40", 181e12),
                       ("A10", 125e12), ("4090", 165e12)):
        if key in name:
            return flops
    return None


def launch(devices: int, argv: list[str] | None = None) -> int:
    """Re-run this command under torchrun with `devices` processes on this machine."""
    import subprocess

    argv = list(sys.argv[1:] if argv is None else argv)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={devices}", "-m", "ehrkit", *argv]
    return subprocess.call(command)


def available_devices() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 1
