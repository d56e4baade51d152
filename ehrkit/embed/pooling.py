"""From a batch of per-position states to one vector per row, and trajectory statistics.

States are [batch, positions, dim], right-padded; `lengths` [batch] counts each row's real
positions (at least 1). Padding never enters a result: every reduction is masked by length, and
masked with `where` rather than a product, so a non-finite value at a padded position cannot
leak into a row.
"""

from __future__ import annotations

import torch

POOLS = ("cls", "mean", "last")


def pool(states: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """[batch, dim] float32: the first position (cls), the mean over real positions (mean), or
    the last real position (last)."""
    if how == "cls":
        return states[:, 0].float()
    if how == "last":
        return states[torch.arange(states.shape[0], device=states.device), lengths - 1].float()
    if how == "mean":
        real = _real(states, lengths)[..., None]
        summed = torch.where(real, states.float(), 0.0).sum(dim=1)
        return summed / lengths[:, None].to(summed.dtype)
    raise ValueError(f"unknown pooling '{how}'")


def trajectory(states: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
    """Jumps: the L2 distances between consecutive real positions' states (methods.md 3.7 item
    5), in float32. Per row: `traj_length` (their sum, 0 for one position), `max_jump` and
    `mean_jump` (NaN for one position: there is no jump)."""
    x = states.float()
    jumps = torch.linalg.vector_norm(x[:, 1:] - x[:, :-1], dim=-1)  # [batch, positions - 1]
    real = _real(jumps, lengths - 1)
    count = (lengths - 1).clamp(min=0).to(jumps.dtype)
    total = torch.where(real, jumps, 0.0).sum(dim=1)
    largest = torch.where(real, jumps, -torch.inf).amax(dim=1) if jumps.shape[1] else \
        torch.full_like(total, -torch.inf)
    nan = torch.full_like(total, torch.nan)
    return {"traj_length": total,
            "max_jump": torch.where(count > 0, largest, nan),
            "mean_jump": torch.where(count > 0, total / count.clamp(min=1), nan)}


def real_positions(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[sum of lengths, dim]: every row's real positions, row after row."""
    return states[_real(states, lengths)]


def _real(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[batch, positions] bool: position < length."""
    positions = torch.arange(x.shape[1], device=x.device)
    return positions[None, :] < lengths[:, None]
