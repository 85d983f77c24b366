"""The DAGL network: ``y = x + tail(body(head(x)))`` with an M-GFAM stack in the middle of the body.

Module names and nesting mirror the authors' release so that ``state_dict()`` keys are exactly the
official checkpoint keys (``body.{n/2}`` is the M-GFAM stack, ``body.{n+1}`` the last body conv).
So does its parameter sharing: the main body's ResBlocks share one PReLU (see :class:`DAGL`).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn
import torch

from ..errors import WeightsError
from ..tasks.configs import TaskConfig, get_config
from .gfam import GFAM_IMPLEMENTATIONS, GFAMHead

N_FEATS = 64


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class ResBlock(nn.Module):
    """conv - PReLU (a single slope for all channels) - conv, plus identity.

    ``act`` is the PReLU module to use, so that blocks can share one as the release's main body does;
    without it the block makes its own, as the M-GFAM's blocks do.
    """

    def __init__(self, n_feats: int = N_FEATS, act: nn.PReLU | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(n_feats, n_feats), act if act is not None else nn.PReLU(),
                                  conv3x3(n_feats, n_feats))

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
    """DAGL for one task configuration; maps (N, C, H, W) in [0, 1] to the same shape.

    The ``n_resblocks`` ResBlocks of the main body (``body.{0..n/2-1}`` and ``body.{n/2+1..n}``) share ONE
    PReLU, because the release builds them so: ``common.ResBlock(conv, n_feats, kernel_size, nn.PReLU(),
    res_scale=...)`` puts that PReLU into the ``bias`` parameter, and ``act`` keeps its default, the single
    ``nn.PReLU()`` made when the release's ``common.py`` is imported. Official checkpoints therefore hold
    ``n_resblocks`` equal copies of one slope (``state_dict()`` writes a shared module under every path, so
    ours do too), and loading refuses a file whose copies differ (:func:`check_tied_slopes`): this network
    cannot hold it, and a plain load would silently keep the last copy.
    """

    def __init__(self, config: TaskConfig, gfam: str = "batched") -> None:
        super().__init__()
        if gfam not in GFAM_IMPLEMENTATIONS:
            raise ValueError(f"unknown GFAM implementation {gfam!r}; "
                             f"choose one of: {', '.join(GFAM_IMPLEMENTATIONS)}")
        self.config = config
        half = config.n_resblocks // 2
        shared = nn.PReLU()  # the release's default-argument PReLU (see the class docstring)
        body: list[nn.Module] = [ResBlock(act=shared) for _ in range(half)]
        body.append(MGFAM(GFAM_IMPLEMENTATIONS[gfam]))
        body.extend(ResBlock(act=shared) for _ in range(half))
        body.append(conv3x3(N_FEATS, N_FEATS))
        self.head = nn.Sequential(conv3x3(config.channels, N_FEATS))
        self.body = nn.Sequential(*body)
        self.tail = nn.Sequential(conv3x3(N_FEATS, config.channels))
        self.register_load_state_dict_pre_hook(_refuse_untied_slopes)

    def tied_slope_keys(self) -> list[str]:
        """The state-dict keys under which the main body's one shared PReLU slope appears, one per block."""
        return [f"body.{i}.body.1.weight" for i, block in enumerate(self.body) if isinstance(block, ResBlock)]

    def forward(self, x: Tensor) -> Tensor:
        return x + self.tail(self.body(self.head(x)))


def check_tied_slopes(state: Mapping[str, Tensor], keys: list[str]) -> None:
    """Refuse ``state`` if its copies of the main body's shared PReLU slope (under ``keys``) differ.

    The one check every load goes through (:class:`DAGL` runs it before ``load_state_dict`` copies
    anything, so ``dagl.load``, ``dagl-train --init`` and ``--resume`` alike): the authors' network
    holds a single slope for these blocks, so no choice among differing copies would be that network.
    """
    present = [key for key in keys if key in state]
    if not present:
        return
    first = state[present[0]]
    differing = [key for key in present[1:] if not torch.equal(state[key], first)]
    if differing:
        distinct = len({tuple(state[key].detach().flatten().tolist()) for key in present})
        raise WeightsError(
            f"the main-body ResBlocks' PReLU slopes differ ({present[0]} = {_describe(first)}, {differing[0]} = "
            f"{_describe(state[differing[0]])}; {distinct} different values in {len(present)} copies): the "
            f"authors' network holds one slope for these blocks, so it cannot hold this file")


def tie_slopes_at_mean(state: Mapping[str, Tensor], keys: list[str]) -> tuple[dict[str, Tensor], list[float]]:
    """``state`` with its copies of the main body's PReLU slope (under ``keys``) all set to their mean, and
    the slopes as they were: what makes weights trained with the slopes apart (dagl's model before they were
    shared) loadable into the release's network (the shipped jpeg weights were tied so, at no measured cost).

    The mean is taken in float32 and stored in each copy's own dtype, so an FP16 file stays FP16.
    """
    present = [key for key in keys if key in state]
    if not present:
        raise WeightsError(f"no main-body PReLU slopes ({keys[0]}, ...) in these weights")
    before = [float(state[key].float().mean()) for key in present]
    mean = torch.stack([state[key].float() for key in present]).mean(dim=0)
    tied = dict(state)
    for key in present:
        tied[key] = mean.to(state[key].dtype).clone()
    return tied, before


def _describe(tensor: Tensor) -> str:
    return f"{float(tensor.flatten()[0]):.4g}" if tensor.numel() == 1 else f"shape {tuple(tensor.shape)}"


def _refuse_untied_slopes(model: DAGL, state: Mapping[str, Tensor], prefix: str, *_: object) -> None:
    """``load_state_dict`` pre-hook of :class:`DAGL`; ``prefix`` locates it inside a wrapper (DDP, compile)."""
    check_tied_slopes(state, [prefix + key for key in model.tied_slope_keys()])


def create(task: str, gfam: str = "batched") -> DAGL:
    """A randomly initialised DAGL for ``task`` (training mode, float32, CPU)."""
    return DAGL(get_config(task), gfam=gfam)
