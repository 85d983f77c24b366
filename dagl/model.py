"""The DAGL network: ``y = x + tail(body(head(x)))`` with an M-GFAM stack in the middle of the body.

Module names and nesting mirror the authors' release so that ``state_dict()`` keys are exactly the
official checkpoint keys (``body.{n/2}`` is the M-GFAM stack, ``body.{n+1}`` the last body conv).
"""

from __future__ import annotations

from torch import Tensor, nn
import torch

from .configs import TaskConfig, get_config
from .gfam import GFAM_IMPLEMENTATIONS, GFAMHead

N_FEATS = 64


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class ResBlock(nn.Module):
    """conv - PReLU - conv, plus identity; ``act`` is the PReLU module, which blocks may share."""

    def __init__(self, n_feats: int = N_FEATS, act: nn.PReLU | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), act or nn.PReLU(), conv3x3(n_feats, n_feats))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class MGFAM(nn.Module):
    """Three stages of four GFAM heads each, merged by 1x1 convs, with ResBlocks between stages.

    Attribute names (``c{stage}_{head}``, ``c{stage}_c``, ``RBS1``, ``RBS2``) are the release's.
    """

    stages = 3
    heads = 4

    def __init__(self, gfam: type[GFAMHead], n_feats: int = N_FEATS, n_between: int = 4) -> None:
        super().__init__()
        self.RBS1 = nn.Sequential(*(ResBlock(n_feats) for _ in range(n_between)))
        self.RBS2 = nn.Sequential(*(ResBlock(n_feats) for _ in range(n_between)))
        for stage in range(1, self.stages + 1):
            for head in range(1, self.heads + 1):
                setattr(self, f"c{stage}_{head}", gfam(in_channels=n_feats))
            setattr(self, f"c{stage}_c", nn.Conv2d(n_feats, n_feats, 1))

    def _stage(self, stage: int, x: Tensor) -> Tensor:
        heads = [getattr(self, f"c{stage}_{h}")(x) for h in range(1, self.heads + 1)]
        return getattr(self, f"c{stage}_c")(torch.cat(heads, dim=1)) + x

    def forward(self, x: Tensor) -> Tensor:
        out = self.RBS1(self._stage(1, x))
        out = self.RBS2(self._stage(2, out))
        return self._stage(3, out)


class DAGL(nn.Module):
    """DAGL for one task configuration; maps (N, C, H, W) in [0, 1] to the same shape."""

    def __init__(self, config: TaskConfig, gfam: str = "batched") -> None:
        super().__init__()
        if gfam not in GFAM_IMPLEMENTATIONS:
            raise ValueError(f"unknown GFAM implementation {gfam!r}; "
                             f"choose one of: {', '.join(GFAM_IMPLEMENTATIONS)}")
        self.config = config
        half = config.n_resblocks // 2
        # The release builds these blocks as ResBlock(conv, n_feats, kernel_size, nn.PReLU(), ...): the
        # PReLU lands in its `bias` parameter and `act` keeps its default, one nn.PReLU() made when the
        # function was defined, so every main-body block shares one slope (docs/dagl-reference.md).
        act = nn.PReLU()
        body: list[nn.Module] = [ResBlock(act=act) for _ in range(half)]
        body.append(MGFAM(GFAM_IMPLEMENTATIONS[gfam]))
        body.extend(ResBlock(act=act) for _ in range(half))
        body.append(conv3x3(N_FEATS, N_FEATS))
        self.head = nn.Sequential(conv3x3(config.channels, N_FEATS))
        self.body = nn.Sequential(*body)
        self.tail = nn.Sequential(conv3x3(N_FEATS, config.channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.tail(self.body(self.head(x)))


def create(task: str, gfam: str = "batched") -> DAGL:
    """A randomly initialised DAGL for ``task`` (training mode, float32, CPU)."""
    return DAGL(get_config(task), gfam=gfam)
