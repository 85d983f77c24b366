"""Peak memory of one network call, so a tile or batch that cannot fit is refused before any work.

GFAM attends from every query (one per 4x4 pixels) to every pixel, so one head holds float32
(N, H*W/16, H*W) matrices: scores, the threshold mask, the softmax and the masked weights. Their
size grows with (H*W)^2/16 and dominates beyond ~100 px tiles; below that, per-pixel tensors (the
784-wide value patches, keys, features) dominate. Heads run one after the other, so the peak is
one head's worth. Measured on the CPU (ru_maxrss increase of one forward pass, PyTorch, batched
GFAM, one thread) and fitted as ``ATTENTION_COPIES * attention_bytes + PIXEL_BYTES * N*H*W``:

    tile  batch  task       measured   attention matrix   estimate
      48     1   jpeg         25 MB         1.3 MB          24 MB
      64     1   jpeg         47 MB         4.2 MB          51 MB
      96     1   jpeg        161 MB        21.2 MB         167 MB
     128     1   jpeg        420 MB        67.1 MB         428 MB
     160     1   jpeg        918 MB       163.8 MB         934 MB
     128     1   denoise     451 MB        67.1 MB         428 MB
     128     1   demosaic    423 MB        67.1 MB         428 MB
     128     1   real-den.   408 MB        67.1 MB         428 MB
      64     4   jpeg        293 MB        16.8 MB         202 MB

Small batched tiles are underestimated (allocator overhead dominates there, by ~100 MB); where a
budget can bind (tiles of 160 px and more) the attention term is over 80% of the estimate.

Tasks differ only in channels and ResBlock count, which barely move the peak, so one formula
serves all of them. A 320 px tile (a 48x48 image asked for ``--tile 320``) is thus ~12.6 GB, as
observed (over 12 GB).

Training keeps every head's attention tensors for the backward pass, so its peak is many times one
forward's. Measured the same way (one Adam step of ``((net(x) - x) ** 2).mean()`` after a warm-up
step, jpeg, float32 CPU, one thread) and fitted as ``TRAIN_ATTENTION_COPIES * attention_bytes +
TRAIN_PIXEL_BYTES * N*H*W``, -5 % to +10 % where a budget binds (64 px and up):

    patch  batch   measured    estimate
      48     1      243 MiB     298 MiB
      64     1      579 MiB     639 MiB
      64     2     1168 MiB    1277 MiB
      96     1     2253 MiB    2134 MiB
     128     1     5200 MiB    5530 MiB

The paper's batch of 32 crops of 64 px is thus about 20 GiB (docs/training.md: "roughly 20 GB").
On a GPU with bf16 autocast the real peak is lower (not measured here); the estimate is the float32 one.
"""

from __future__ import annotations

import os

from .errors import UserInputError

#: Live copies of the (N, Nq, HW) float32 attention matrix at the peak (fitted; see above).
ATTENTION_COPIES = 4.5
#: Bytes per input pixel for everything else (value patches alone are 784 floats = 3.1 kB).
PIXEL_BYTES = 7_700
#: Never plan for more than this, whatever the machine: a runaway tile should fail fast, not swap.
DEFAULT_BUDGET = 8 << 30


#: Training: live attention-sized tensors of all twelve heads, kept for backward (fitted; see above).
TRAIN_ATTENTION_COPIES = 62
#: Training: bytes per input pixel of the activations every layer keeps for backward (fitted).
TRAIN_PIXEL_BYTES = 100_000


class MemoryBudgetError(UserInputError, ValueError):
    """Tiles that would need more memory than the budget; raised before anything is loaded."""


def attention_bytes(height: int, width: int, batch: int = 1) -> int:
    """Bytes of one float32 (N, Nq, H*W) attention matrix of a GFAM head."""
    queries = -(-height // 4) * -(-width // 4)
    return 4 * batch * queries * height * width


def estimate_peak_bytes(height: int, width: int, batch: int = 1) -> int:
    """Peak bytes of one forward pass over ``batch`` tiles of ``height`` x ``width`` (any task)."""
    return int(ATTENTION_COPIES * attention_bytes(height, width, batch) + PIXEL_BYTES * batch * height * width)


def memory_budget(device: str = "cpu") -> int:
    """Half the machine's physical memory, at most :data:`DEFAULT_BUDGET`; on ``cuda[:N]``, 95 % of that GPU's.

    The GPU's memory is the process's alone (tensors live there, not in host memory), so a training
    run may plan for most of it.
    """
    if str(device).startswith("cuda"):
        import torch

        return int(0.95 * torch.cuda.get_device_properties(torch.device(device)).total_memory)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every platform names these
        return DEFAULT_BUDGET
    return min(DEFAULT_BUDGET, physical // 2)


def estimate_training_bytes(patch: int, batch: int) -> int:
    """Peak bytes of one training step (forward, backward, Adam) over ``batch`` crops of ``patch`` px."""
    return int(TRAIN_ATTENTION_COPIES * attention_bytes(patch, patch, batch) + TRAIN_PIXEL_BYTES * batch * patch ** 2)


def _refuse_over(need: int, budget: int, what: str, hint: str) -> None:
    if need > budget:
        raise MemoryBudgetError(f"{what} would need about {need / 2**30:.1f} GiB (GFAM attention grows with "
                                f"(H*W)^2), over the {budget / 2**30:.1f} GiB budget; {hint}")


def check_memory(height: int, width: int, batch: int, budget: int | None = None, what: str = "tile",
                 hint: str = "use a smaller --tile or --batch") -> None:
    """Refuse ``batch`` tiles of ``height`` x ``width`` whose estimated peak exceeds ``budget``."""
    budget = memory_budget() if budget is None else budget
    _refuse_over(estimate_peak_bytes(height, width, batch), budget, f"{batch} {what}(s) of {width}x{height} px",
                 hint)


def check_training_memory(patch: int, batch: int, budget: int) -> None:
    """Refuse training ``batch`` crops of ``patch`` px per process whose estimated peak exceeds ``budget``."""
    _refuse_over(estimate_training_bytes(patch, batch), budget, f"training on {batch} crop(s) of {patch}x{patch} px "
                 f"per process", "use a smaller --patch or --batch-size")
