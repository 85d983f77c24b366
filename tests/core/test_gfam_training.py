"""The training form of GFAM (:class:`UnfoldGFAM`) is the same function as the readable one.

Training may use any implementation of GFAM that computes ``PlainGFAM``'s function: these tests
hold ``UnfoldGFAM`` to it in float64, in the outputs and in every gradient (input and parameters),
on sizes that exercise the "same" padding of both strides and a real share of masked keys.
"""

from __future__ import annotations

import pytest
import torch

import dagl
from dagl.network.gfam import PlainGFAM, UnfoldGFAM
from gfam_heads import make_heads, masked_share

SIZES = [(9, 11), (16, 16), (21, 14), (32, 32)]


def heads_float64(seed: int = 0) -> tuple[PlainGFAM, UnfoldGFAM]:
    """test_gfam's heads (a real share of disconnected keys), as float64 plain and unfold heads."""
    plain, _ = make_heads(seed)
    unfold = UnfoldGFAM()
    unfold.load_state_dict(plain.state_dict())
    return plain.double().train(), unfold.double()


def outputs_and_gradients(head: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor):
    x = x.clone().requires_grad_(True)
    head.zero_grad(set_to_none=True)
    out = head(x)
    (out * upstream).sum().backward()
    grads = {name: p.grad.clone() for name, p in head.named_parameters() if p.grad is not None}
    return out.detach(), x.grad.clone(), grads


@pytest.mark.slow
@pytest.mark.parametrize("size", SIZES)
def test_unfold_gfam_equals_plain_in_float64_outputs_and_gradients(size):
    plain, unfold = heads_float64()
    x = 0.25 * torch.randn(2, 64, *size, dtype=torch.float64)
    assert 0.2 < masked_share(plain, x) < 0.8, "the test must exercise the dynamic mask"
    upstream = torch.randn(2, 16, *size, dtype=torch.float64)
    out_p, dx_p, grads_p = outputs_and_gradients(plain, x, upstream)
    out_u, dx_u, grads_u = outputs_and_gradients(unfold, x, upstream)
    assert (out_u - out_p).abs().max().item() <= 1e-10
    assert (dx_u - dx_p).abs().max().item() <= 1e-10 * max(1.0, dx_p.abs().max().item())
    # Every trained parameter gets a gradient, the same one (W is never used: no gradient in either).
    assert set(grads_u) == set(grads_p) == {n for n, _ in plain.named_parameters() if not n.startswith("W.")}
    for name, grad in grads_p.items():
        scale = max(1.0, grad.abs().max().item())
        assert (grads_u[name] - grad).abs().max().item() <= 1e-10 * scale, name


@pytest.mark.slow
def test_unfold_network_equals_plain_network_in_float64():
    """The whole jpeg network and its gradients, where differences in any of the 12 heads would compound."""
    torch.manual_seed(2)
    plain = dagl.create("jpeg", gfam="plain").double()
    unfold = dagl.create("jpeg", gfam="unfold").double()
    unfold.load_state_dict(plain.state_dict())
    x = torch.rand(2, 1, 24, 20, dtype=torch.float64)
    target = torch.rand_like(x)
    grads = []
    for net in (plain, unfold):
        net.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(x), target)
        loss.backward()
        grads.append((loss.item(), {n: p.grad for n, p in net.named_parameters() if p.grad is not None}))
    (loss_p, grads_p), (loss_u, grads_u) = grads
    assert abs(loss_u - loss_p) <= 1e-12
    assert set(grads_u) == set(grads_p)
    worst = max(((grads_u[n] - g).abs().max() / g.abs().max().clamp_min(1e-30)).item() for n, g in grads_p.items())
    assert worst <= 1e-9


def test_unfold_gfam_keeps_the_attention_in_float32_under_bfloat16_autocast():
    """Under autocast the convolutions run in bfloat16 but the mask decisions are float32's: the
    share of disconnected keys matches float32's to within the pairs whose margin is below
    bfloat16's rounding of q and k, far closer than a bfloat16 similarity would keep it."""
    plain, unfold = heads_float64()
    unfold = unfold.float()
    x = 0.25 * torch.randn(2, 64, 20, 20)
    decisions = {}
    original = unfold.attention

    def spy(scores, thr, bias):
        decisions.setdefault("dtype", scores.dtype)
        mask = torch.relu(scores - scores.mean(dim=-1, keepdim=True) * thr + bias)
        decisions.setdefault("masks", []).append(mask > 0)
        return original(scores, thr, bias)

    unfold.attention = spy
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = unfold(x)
    assert decisions["dtype"] == torch.float32
    assert out.dtype == torch.float32  # the head hands float32 on, as the convolutions around it expect
    with torch.no_grad():
        expected = plain(x.double())
    assert torch.isfinite(out).all()
    # bfloat16 convolutions move the output by about their rounding (2^-8 relative), not more.
    relative = ((out.double() - expected).abs().max() / expected.abs().max()).item()
    assert relative < 0.05
