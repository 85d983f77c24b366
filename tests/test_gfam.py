"""GFAM numerics: the plain head against a loop-by-loop float64 reading of the contract, and the
batched (export-ready) head and model against the plain ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dagl
from dagl.gfam import BatchedGFAM, PlainGFAM


def make_heads(seed: int = 0) -> tuple[PlainGFAM, BatchedGFAM]:
    """Random heads whose dynamic threshold disconnects a real share of the keys.

    With default initialisation almost every key stays connected, which would leave the masking
    quirks untested; a threshold scale near 1 cuts roughly the keys below the row mean.
    """
    torch.manual_seed(seed)
    plain = PlainGFAM()
    with torch.no_grad():
        plain.thr_conv.bias.fill_(1.0)
        plain.bias_conv.bias.fill_(0.0)
    batched = BatchedGFAM()
    batched.load_state_dict(plain.state_dict())
    return plain.eval(), batched.eval()


def naive_gfam(head: PlainGFAM, x: torch.Tensor) -> np.ndarray:
    """The contract's steps with explicit index arithmetic in float64, one query at a time."""
    k, s, half = 7, 4, 3
    with torch.no_grad():
        g = head.g(x).double()[0].numpy()
        t = head.theta(x).double()[0].numpy()
        thr, bias = (v.double()[0].numpy() for v in head.node_affine(x))
    w1, b1 = (p.detach().double().numpy() for p in head.fc1[0].parameters())
    w2, b2 = (p.detach().double().numpy() for p in head.fc2[0].parameters())
    channels, height, width = g.shape

    def patch(img: np.ndarray, top: int, left: int) -> np.ndarray:
        out = np.zeros((channels, k, k))
        for dy in range(k):
            for dx in range(k):
                y, xx = top + dy, left + dx
                if 0 <= y < height and 0 <= xx < width:
                    out[:, dy, dx] = img[:, y, xx]
        return out.reshape(-1)  # (channel, row, col) order

    rows, cols = -(-height // s), -(-width // s)
    pad_top = ((rows - 1) * s + k - height) // 2
    pad_left = ((cols - 1) * s + k - width) // 2
    keys = np.stack([np.maximum(w2 @ patch(g, y - half, xx - half) + b2, 0)
                     for y in range(height) for xx in range(width)])
    values = np.stack([patch(t, y - half, xx - half) for y in range(height) for xx in range(width)])
    out = np.zeros((channels, height, width))
    count = np.zeros((height, width))
    for qi in range(rows):
        for qj in range(cols):
            q = np.maximum(w1 @ patch(g, qi * s - pad_top, qj * s - pad_left) + b1, 0)
            scores = keys @ q
            node = qi * cols + qj
            mask = np.maximum(scores - scores.mean() * thr[node] + bias[node], 0)
            logits = 10 * scores * mask
            weights = np.exp(logits - logits.max())
            weights = weights / weights.sum() * (mask != 0)
            aggregated = (weights @ values).reshape(channels, k, k)
            for dy in range(k):  # folded with padding 3, not the query's own padding
                for dx in range(k):
                    y, xx = qi * s - half + dy, qj * s - half + dx
                    if 0 <= y < height and 0 <= xx < width:
                        out[:, y, xx] += aggregated[:, dy, dx]
                        count[y, xx] += 1
    return out / count


@pytest.mark.parametrize("size", [(9, 11), (10, 8), (13, 6)])
def test_plain_gfam_follows_the_contract(size):
    plain, _ = make_heads(seed=size[0])
    x = 0.25 * torch.randn(1, 64, *size)  # moderate logits, see test_batched_gfam_matches_plain
    with torch.no_grad():
        ours = plain(x)[0].double().numpy()
    reference = naive_gfam(plain, x)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-6, rtol=0)


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (75, 96)])
def test_batched_gfam_matches_plain(size):
    plain, batched = make_heads()
    # Feature scale that keeps logits moderate (max ~3): with logits in the hundreds the softmax is
    # so sharp that float32 rounding differences between any two summation orders show up.
    x = 0.25 * torch.randn(2, 64, *size)
    with torch.no_grad():
        scores_mask = []
        original = plain.attention

        def spy(scores, thr, b):
            scores_mask.append((torch.relu(scores - scores.mean(-1, keepdim=True) * thr + b) > 0)
                               .float().mean().item())
            return original(scores, thr, b)

        plain.attention = spy
        expected = plain(x)
        got = batched(x)
    assert 0.2 < np.mean(scores_mask) < 0.8, "the test must exercise the dynamic mask"
    assert got.shape == (2, 16, *size)
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("task,size", [("jpeg", (37, 53)), ("jpeg", (64, 64)), ("demosaic", (75, 96))])
def test_batched_model_matches_plain_model(task, size):
    torch.manual_seed(1)
    plain = dagl.create(task, gfam="plain").eval()
    batched = dagl.create(task).eval()
    batched.load_state_dict(plain.state_dict())
    x = torch.rand(2, plain.config.channels, *size)
    with torch.no_grad():
        diff = (batched(x) - plain(x)).abs().max().item()
    assert diff <= 1e-5


def test_batch_samples_are_independent():
    _, batched = make_heads()
    x = 0.25 * torch.randn(3, 64, 21, 18)
    with torch.no_grad():
        together = batched(x)
        alone = torch.cat([batched(x[i:i + 1]) for i in range(3)])
    assert (together - alone).abs().max().item() <= 1e-5
