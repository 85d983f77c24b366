"""The graph-based feature aggregation module (GFAM), one head, in two implementations.

Both share one parameter layout, the release's (``g``, ``theta``, ``W``, ``fc1.0``, ``fc2.0``,
``thr_conv``, ``bias_conv``), so a state dict moves freely between them:

* :class:`PlainGFAM` follows ``docs/dagl-reference.md`` step by step, one sample at a time, with
  explicit patch arrays. It is slow and is the readable definition of truth.
* :class:`UnfoldGFAM` computes the same numbers for the whole batch with torch's own im2col/col2im
  (``unfold``/``fold``) and keeps the similarity and the masked softmax in float32 under autocast:
  the fastest form to train with on a CPU, not an exportable one (ONNX has no Col2Im that TensorRT
  takes).
* :class:`BatchedGFAM` computes the same numbers for the whole batch at once and is written only
  with operations TensorRT's ONNX parser accepts (Conv, ConvTranspose, MatMul, Softmax,
  elementwise ops, Pad/Slice with shape-derived amounts), so the export path uses it as is:

  - ``fc1``/``fc2`` applied to flattened 7x7 patches are run as 7x7 convolutions (same numbers,
    no 784-wide key patch array);
  - the value patches (im2col of ``theta``) are a grouped convolution with fixed one-hot weights;
  - the masked softmax uses ``Greater`` + ``Cast`` instead of boolean indexing;
  - col2im is a grouped transposed convolution with the same one-hot weights, divided by the
    overlap count, which is itself a transposed convolution of ones, so it follows the input size
    inside an exported graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KSIZE = 7
QUERY_STRIDE = 4
INTER_CHANNELS = 16
SOFTMAX_SCALE = 10.0


def same_padding(length, kernel: int, stride: int):
    """TensorFlow "same" padding (before, after) for one axis.

    Valid for ``kernel >= stride`` only (both uses in DAGL: 7/4 and 7/1), where the total is never
    negative, so no ``max(0, ...)`` is needed and the arithmetic stays traceable on symbolic sizes.
    """
    out = (length + stride - 1) // stride
    total = (out - 1) * stride + kernel - length
    before = total // 2
    return before, total - before


def pad_same(x: Tensor, kernel: int, stride: int) -> Tensor:
    """Zero-pad (N, C, H, W) so a ``kernel``/``stride`` window yields ceil(H/stride) outputs."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom))


class GFAMHead(nn.Module):
    """Parameters of one GFAM head, laid out exactly as in the official checkpoints."""

    def __init__(self, in_channels: int = 64, inter_channels: int = INTER_CHANNELS,
                 ksize: int = KSIZE, stride: int = QUERY_STRIDE,
                 softmax_scale: float = SOFTMAX_SCALE) -> None:
        super().__init__()
        self.ksize = ksize
        self.stride = stride
        self.softmax_scale = softmax_scale
        self.inter_channels = inter_channels
        patch = ksize * ksize * inter_channels
        self.g = nn.Conv2d(in_channels, inter_channels, 3, padding=1)
        # Present in the release's checkpoints but never used in forward; kept so they load strictly.
        self.W = nn.Conv2d(inter_channels, in_channels, 1)
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.fc1 = nn.Sequential(nn.Linear(patch, patch // 4), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(patch, patch // 4), nn.ReLU())
        self.thr_conv = nn.Conv2d(in_channels, 1, ksize, stride=stride)
        self.bias_conv = nn.Conv2d(in_channels, 1, ksize, stride=stride)

    def node_affine(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-query threshold scale and bias, (N, Nq) each, on the query grid."""
        xp = pad_same(x, self.ksize, self.stride)
        return self.thr_conv(xp).flatten(1), self.bias_conv(xp).flatten(1)

    def attention(self, scores: Tensor, thr: Tensor, bias: Tensor) -> Tensor:
        """Dynamic-threshold masked softmax over keys, with both release quirks.

        ``scores`` is (..., Nq, HW); ``thr``/``bias`` broadcast as (..., Nq, 1). The softmax runs
        over all keys (disconnected ones enter with logit 0) and the disconnected weights are zeroed
        afterwards without renormalising, exactly as the release does.
        """
        mask = F.relu(scores - scores.mean(dim=-1, keepdim=True) * thr + bias)
        weights = torch.softmax(scores * mask * self.softmax_scale, dim=-1)
        return weights * (mask > 0).to(weights.dtype)


class PlainGFAM(GFAMHead):
    """Step-by-step transcription of docs/dagl-reference.md; loops over the batch like the release."""

    def forward(self, x: Tensor) -> Tensor:
        k, s = self.ksize, self.stride
        height, width = x.shape[-2:]
        g, t = self.g(x), self.theta(x)
        thr, bias = self.node_affine(x)
        outputs = []
        for i in range(x.shape[0]):
            query_patches = F.unfold(pad_same(g[i:i + 1], k, s), k, stride=s)[0].T  # (Nq, 784)
            key_patches = F.unfold(pad_same(g[i:i + 1], k, 1), k)[0].T  # (HW, 784)
            value_patches = F.unfold(pad_same(t[i:i + 1], k, 1), k)[0].T  # (HW, 784)
            q = self.fc1(query_patches)
            keys = self.fc2(key_patches)
            weights = self.attention(q @ keys.T, thr[i].unsqueeze(1), bias[i].unsqueeze(1))
            aggregated = (weights @ value_patches).T.unsqueeze(0)  # (1, 784, Nq)
            # QUIRK: folded back with padding k//2 although the queries used "same" padding.
            folded = F.fold(aggregated, (height, width), k, padding=k // 2, stride=s)
            ones = F.unfold(torch.ones_like(folded), k, padding=k // 2, stride=s)
            count = F.fold(ones, (height, width), k, padding=k // 2, stride=s)
            outputs.append(folded / count)
        return torch.cat(outputs, dim=0)


def _at_least_float32(x: Tensor) -> Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


class UnfoldGFAM(GFAMHead):
    """The training form: the same function as :class:`PlainGFAM`, batched, with ``unfold``/``fold``.

    Against :class:`BatchedGFAM` it drops the one-hot grouped convolutions that copy value patches
    (a copy done as a convolution, slow forward and backward on a CPU) and computes col2im with
    ``F.fold``; the key Linear stays a 7x7 convolution, which measured faster than one GEMM on
    unfolded patches.
    """

    def forward(self, x: Tensor) -> Tensor:
        k, s = self.ksize, self.stride
        height, width = x.shape[-2:]
        g, t = self.g(x), self.theta(x)
        query_patches = F.unfold(pad_same(g, k, s), k, stride=s)  # (N, 784, Nq)
        fc1 = self.fc1[0]
        q = F.relu(torch.matmul(fc1.weight, query_patches) + fc1.bias.unsqueeze(1))  # (N, 196, Nq)
        fc2 = self.fc2[0]
        key_weight = fc2.weight.view(fc2.out_features, self.inter_channels, k, k)
        keys = F.relu(F.conv2d(g, key_weight, fc2.bias, padding=k // 2)).flatten(2)  # (N, 196, HW)
        thr, bias = self.node_affine(x)
        # The similarity and the mask in float32 (or wider) even under autocast: the dynamic threshold
        # compares each score with its row mean, and bfloat16's 8-bit mantissa would move keys across it.
        with torch.autocast(x.device.type, enabled=False):
            scores = torch.matmul(_at_least_float32(q).transpose(1, 2), _at_least_float32(keys))
            weights = self.attention(scores, _at_least_float32(thr).unsqueeze(-1),
                                     _at_least_float32(bias).unsqueeze(-1))  # (N, Nq, HW)
        values = F.unfold(t, k, padding=k // 2)  # (N, 784, HW)
        aggregated = torch.matmul(values, weights.to(values.dtype).transpose(1, 2))  # (N, 784, Nq)
        # QUIRK: folded back with padding k//2 although the queries used "same" padding.
        folded = F.fold(aggregated, (height, width), k, padding=k // 2, stride=s)
        ones = torch.ones(1, k * k, aggregated.shape[-1], dtype=x.dtype, device=x.device)
        count = F.fold(ones, (height, width), k, padding=k // 2, stride=s)
        return _at_least_float32(folded) / count


class BatchedGFAM(GFAMHead):
    """Vectorised, ONNX/TensorRT-friendly GFAM; same numbers as :class:`PlainGFAM`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        k2 = self.ksize * self.ksize
        # One-hot kernel: output channel c*k2 + r of a grouped conv copies pixel r of the k x k
        # window of channel c, i.e. the (channel, row, col) order of torch's unfold. The same tensor
        # drives col2im as a grouped transposed convolution.
        one_hot = torch.eye(k2).repeat(self.inter_channels, 1)
        self.register_buffer("patch_kernel", one_hot.view(-1, 1, self.ksize, self.ksize),
                             persistent=False)
        self.register_buffer("window", torch.ones(1, 1, self.ksize, self.ksize), persistent=False)

    def _patch_linear_as_conv(self, fc: nn.Sequential, g: Tensor, stride: int) -> Tensor:
        """``fc`` on flattened k x k patches of ``g`` == a k x k conv with the reshaped weight."""
        linear = fc[0]
        weight = linear.weight.view(linear.out_features, self.inter_channels, self.ksize, self.ksize)
        return F.relu(F.conv2d(pad_same(g, self.ksize, stride), weight, linear.bias, stride=stride))

    def forward(self, x: Tensor) -> Tensor:
        k, s = self.ksize, self.stride
        batch, _, height, width = x.shape
        g, t = self.g(x), self.theta(x)
        q = self._patch_linear_as_conv(self.fc1, g, s)  # (N, 196, hq, wq)
        query_rows, query_cols = q.shape[-2:]
        keys = self._patch_linear_as_conv(self.fc2, g, 1).flatten(2)  # (N, 196, HW)
        scores = torch.matmul(q.flatten(2).transpose(1, 2), keys)  # (N, Nq, HW)
        thr, bias = self.node_affine(x)
        weights = self.attention(scores, thr.unsqueeze(-1), bias.unsqueeze(-1))
        values = F.conv2d(t, self.patch_kernel, padding=k // 2, groups=self.inter_channels)
        aggregated = torch.matmul(weights, values.flatten(2).transpose(1, 2))  # (N, Nq, 784)
        aggregated = aggregated.transpose(1, 2).reshape(batch, -1, query_rows, query_cols)
        # col2im without padding, then crop k//2 from the top/left: the release's fold padding.
        folded = F.conv_transpose2d(aggregated, self.patch_kernel, stride=s, groups=self.inter_channels)
        count = F.conv_transpose2d(torch.ones_like(aggregated[:1, :1]), self.window, stride=s)
        crop = k // 2
        return (folded / count)[..., crop:crop + height, crop:crop + width]


GFAM_IMPLEMENTATIONS: dict[str, type[GFAMHead]] = {"plain": PlainGFAM, "batched": BatchedGFAM,
                                                   "unfold": UnfoldGFAM}
