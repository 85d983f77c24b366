"""Process-group set-up for ``torchrun`` (one or many nodes) and for a plain single process.

``torchrun`` describes the job through environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); without them the run is one process and no
process group is created, so the same command works on a laptop and on a cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job and which device it drives."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, validates and writes files, so outputs are written once."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(requested: str | None, local_rank: int) -> torch.device:
    """The requested device, else this rank's GPU, else the CPU.

    Under ``torchrun`` every local rank must own a different GPU, so a bare ``cuda`` (or none)
    becomes ``cuda:<LOCAL_RANK>``.
    """
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            from .config import TrainingError

            raise TrainingError(f"--device {requested}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def setup(requested_device: str | None = None) -> DistContext:
    """Join the process group ``torchrun`` describes (gloo on CPU, nccl on CUDA), if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(value: float, ctx: DistContext) -> float:
    """Average a scalar over all ranks (for logs: each rank only sees its share of the batch)."""
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return tensor.item() / ctx.world_size


def from_main(value: int, ctx: DistContext) -> int:
    """Rank 0's ``value`` on every rank: decisions taken on its clock (stop, planned length) must
    be the same everywhere, or the ranks would wait on each other's collectives forever."""
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=ctx.device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())
