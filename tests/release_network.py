"""The authors' network as their release builds it, transcribed for tests and written apart from ``dagl/``.

It keeps the release's module tree, ``add_mean`` (EDSR's ``MeanShift``, built but never applied in forward)
included, so ``load_state_dict(strict=True)`` here is the check that a file loads into the authors' own
network. Its forward follows the release: one sample at a time, patches extracted explicitly, the masked
softmax with both quirks (docs/dagl-reference.md). Nothing here imports ``dagl``: a bug shared with the
product cannot hide.

The constructors are transcribed call for call (``model/common.py`` and ``model/dagl.py`` of
github.com/jianzhangcs/DAGL), because the calls themselves decide the parameter sharing: :class:`RR` passes
``nn.PReLU()`` to :class:`ResBlock` as its 4th positional argument, which is ``bias``, so ``act`` keeps its
default, ONE ``nn.PReLU()`` made when this module is imported. Every main-body block of every :class:`RR`
in the process shares that slope; load weights into a network right before using it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RGB_MEAN = (0.4488, 0.4371, 0.4040)
RGB_STD = (1.0, 1.0, 1.0)


def default_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 bias: bool | nn.Module = True) -> nn.Conv2d:
    """``common.default_conv``; ``bias`` is only tested for truth, so the PReLU RR passes there means True."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size // 2), stride=stride, bias=bias)


class MeanShift(nn.Conv2d):
    """EDSR's mean shift: a frozen 1x1 conv. The release builds ``add_mean`` and never calls it."""

    def __init__(self, rgb_range: float, rgb_mean: tuple[float, ...] = RGB_MEAN,
                 rgb_std: tuple[float, ...] = RGB_STD, sign: int = -1) -> None:
        super().__init__(3, 3, kernel_size=1)
        std = torch.Tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.Tensor(rgb_mean) / std
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    """``common.ResBlock``, signature and default argument included: ``act=nn.PReLU()`` is evaluated once,
    when the class is defined, so every block built without ``act`` shares that one module."""

    def __init__(self, conv, n_feats: int, kernel_size: int, bias: bool | nn.Module = True, bn: bool = False,
                 act: nn.Module = nn.PReLU(), res_scale: float = 1) -> None:
        super().__init__()
        m = []
        for i in range(2):
            m.append(conv(n_feats, n_feats, kernel_size, bias=bias))
            if bn:
                m.append(nn.BatchNorm2d(n_feats))
            if i == 0:
                m.append(act)

        self.body = nn.Sequential(*m)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x).mul(self.res_scale)
        res += x
        return res


def same_pad(images: Tensor, ksize: int, stride: int) -> Tensor:
    """TensorFlow's "same" padding, as the release's ``extract_image_patches`` computes it."""
    rows, cols = images.shape[-2:]
    out_rows, out_cols = math.ceil(rows / stride), math.ceil(cols / stride)
    pad_rows = max(0, (out_rows - 1) * stride + ksize - rows)
    pad_cols = max(0, (out_cols - 1) * stride + ksize - cols)
    top, left = pad_rows // 2, pad_cols // 2
    return F.pad(images, (left, pad_cols - left, top, pad_rows - top))


def extract_image_patches(images: Tensor, ksize: int, stride: int) -> Tensor:
    """(1, C, H, W) -> (1, C*k*k, L) patches of the same-padded image."""
    return nn.Unfold(kernel_size=ksize, stride=stride)(same_pad(images, ksize, stride))


class GraphAggregation(nn.Module):
    """One GFAM head: dynamic-threshold graph attention over 7x7 patches."""

    def __init__(self, in_channels: int = 64, inter_channels: int = 16, ksize: int = 7, stride: int = 4,
                 softmax_scale: float = 10.0) -> None:
        super().__init__()
        self.ksize, self.stride, self.softmax_scale = ksize, stride, softmax_scale
        patch = inter_channels * ksize * ksize
        self.g = nn.Conv2d(in_channels, inter_channels, 3, padding=1)
        self.W = nn.Conv2d(inter_channels, in_channels, 1)
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.fc1 = nn.Sequential(nn.Linear(patch, patch // 4), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(patch, patch // 4), nn.ReLU())
        self.thr_conv = nn.Conv2d(in_channels, 1, ksize, stride=stride)
        self.bias_conv = nn.Conv2d(in_channels, 1, ksize, stride=stride)

    def forward(self, b: Tensor) -> Tensor:
        k, s = self.ksize, self.stride
        rows, cols = b.shape[-2:]
        g_all, theta_all = self.g(b), self.theta(b)
        thr_all = self.thr_conv(same_pad(b, k, s)).view(b.shape[0], -1)
        bias_all = self.bias_conv(same_pad(b, k, s)).view(b.shape[0], -1)
        outputs = []
        for n in range(b.shape[0]):
            g, theta = g_all[n:n + 1], theta_all[n:n + 1]
            queries = self.fc1(extract_image_patches(g, k, s)[0].permute(1, 0))  # (Nq, 196)
            keys = self.fc2(extract_image_patches(g, k, 1)[0].permute(1, 0))  # (HW, 196)
            values = extract_image_patches(theta, k, 1)[0].permute(1, 0)  # (HW, 784)
            score = torch.mm(queries, keys.permute(1, 0))  # (Nq, HW)
            threshold = score.mean(dim=1, keepdim=True) * thr_all[n].unsqueeze(1) - bias_all[n].unsqueeze(1)
            mask = F.relu(score - threshold)
            attention = F.softmax(score * mask * self.softmax_scale, dim=1)
            attention = attention * (mask != 0).float()
            aggregated = torch.mm(attention, values).permute(1, 0).unsqueeze(0)  # (1, 784, Nq)
            fold = nn.Fold((rows, cols), k, padding=k // 2, stride=s)
            overlap = fold(nn.Unfold(k, padding=k // 2, stride=s)(torch.ones(1, theta.shape[1], rows, cols)))
            outputs.append(fold(aggregated) / overlap)
        return torch.cat(outputs, dim=0)


class CES(nn.Module):
    """The M-GFAM stack: three merged groups of four heads, ``num`` ResBlocks between groups.

    Its ResBlocks get ``act=nn.PReLU()`` by keyword, evaluated per block: each has its own slope.
    """

    def __init__(self, in_channels: int, num: int = 4) -> None:
        super().__init__()
        RBS1 = [
            ResBlock(
                default_conv, n_feats=in_channels, kernel_size=3, act=nn.PReLU(), res_scale=1
            ) for _ in range(num)
        ]
        self.RBS1 = nn.Sequential(
            *RBS1
        )
        RBS2 = [
            ResBlock(
                default_conv, n_feats=in_channels, kernel_size=3, act=nn.PReLU(), res_scale=1
            ) for _ in range(num)
        ]
        self.RBS2 = nn.Sequential(
            *RBS2
        )
        for stage in (1, 2, 3):
            for head in (1, 2, 3, 4):
                setattr(self, f"c{stage}_{head}", GraphAggregation(in_channels=in_channels))
            setattr(self, f"c{stage}_c", nn.Conv2d(in_channels, in_channels, 1, 1, 0))

    def merge(self, stage: int, x: Tensor) -> Tensor:
        heads = torch.cat([getattr(self, f"c{stage}_{h}")(x) for h in (1, 2, 3, 4)], dim=1)
        return getattr(self, f"c{stage}_c")(heads) + x

    def forward(self, x: Tensor) -> Tensor:
        out = self.RBS1(self.merge(1, x))
        out = self.RBS2(self.merge(2, out))
        return self.merge(3, out)


class RR(nn.Module):
    """The release's top-level network (its class name); its ``args`` fields become keyword arguments."""

    def __init__(self, n_resblocks: int = 16, n_colors: int = 1, n_feats: int = 64, res_scale: float = 1,
                 rgb_range: float = 1.0, conv=default_conv) -> None:
        super().__init__()
        kernel_size = 3

        rgb_mean = RGB_MEAN
        rgb_std = RGB_STD

        msa = CES(in_channels=n_feats)
        # define head module
        m_head = [conv(n_colors, n_feats, kernel_size)]

        # define body module: nn.PReLU() lands in ResBlock's ``bias``; ``act`` keeps its shared default
        m_body = [
            ResBlock(
                conv, n_feats, kernel_size, nn.PReLU(), res_scale=res_scale
            ) for _ in range(n_resblocks // 2)
        ]
        m_body.append(msa)
        for i in range(n_resblocks // 2):
            m_body.append(ResBlock(conv, n_feats, kernel_size, nn.PReLU(), res_scale=res_scale))

        m_body.append(conv(n_feats, n_feats, kernel_size))
        m_tail = [
            conv(n_feats, n_colors, kernel_size)
        ]

        self.add_mean = MeanShift(rgb_range, rgb_mean, rgb_std, 1)

        self.head = nn.Sequential(*m_head)
        self.body = nn.Sequential(*m_body)
        self.tail = nn.Sequential(*m_tail)

    def forward(self, x: Tensor) -> Tensor:
        res = self.head(x)
        res = self.body(res)
        res = self.tail(res)
        return x + res


#: The release's chop threshold (``min_size`` of its ``forward_chop``), transcribed here, not imported from dagl.
RELEASE_MIN_SIZE = 10000


def release_chop(forward, x: torch.Tensor, min_size: int = RELEASE_MIN_SIZE) -> torch.Tensor:
    """The release's forward_chop written out independently (torch, (B, C, H, W), one tile at a time)."""
    b, c, h, w = x.size()
    h_half, w_half = h // 2, w // 2
    h_size, w_size = (h_half // 4) * 4 + 24, (w_half // 4) * 4 + 24
    lr_list = [x[:, :, 0:h_size, 0:w_size], x[:, :, 0:h_size, (w - w_size):w],
               x[:, :, (h - h_size):h, 0:w_size], x[:, :, (h - h_size):h, (w - w_size):w]]
    if w_size * h_size < min_size:
        sr_list = [forward(patch) for patch in lr_list]
    else:
        sr_list = [release_chop(forward, patch, min_size) for patch in lr_list]
    output = x.new(b, c, h, w)
    output[:, :, 0:h_half, 0:w_half] = sr_list[0][:, :, 0:h_half, 0:w_half]
    output[:, :, 0:h_half, w_half:w] = sr_list[1][:, :, 0:h_half, (w_size - w + w_half):w_size]
    output[:, :, h_half:h, 0:w_half] = sr_list[2][:, :, (h_size - h + h_half):h_size, 0:w_half]
    output[:, :, h_half:h, w_half:w] = sr_list[3][:, :, (h_size - h + h_half):h_size, (w_size - w + w_half):w_size]
    return output
