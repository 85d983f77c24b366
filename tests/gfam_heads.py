"""GFAM heads for the tests: random heads whose dynamic threshold really masks, and the share it keeps."""

from __future__ import annotations

import numpy as np
import torch

from dagl.network.gfam import BatchedGFAM, PlainGFAM


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


def masked_share(plain: PlainGFAM, x: torch.Tensor) -> float:
    """Share of (query, key) pairs the dynamic threshold keeps, so a test knows the mask is exercised."""
    shares = []
    original = plain.attention

    def spy(scores, thr, b):
        shares.append((torch.relu(scores - scores.mean(-1, keepdim=True) * thr + b) > 0).double().mean().item())
        return original(scores, thr, b)

    plain.attention = spy
    try:
        with torch.no_grad():
            plain(x)
    finally:
        del plain.attention
    return float(np.mean(shares))
