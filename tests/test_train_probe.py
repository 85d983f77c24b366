"""dagl.train.probe: a set-up is accepted only if its first loss matches the float32 reference's."""

from __future__ import annotations

import torch

import dagl
from dagl.train.probe import SetUp, measure


def test_the_probe_accepts_the_reference_and_rejects_a_set_up_whose_loss_is_off():
    torch.manual_seed(0)
    state = dagl.create("jpeg").state_dict()
    clean = torch.rand(1, 1, 16, 16)
    batch = ((clean * 255).round() / 255, clean)
    device = torch.device("cpu")
    reference = measure(SetUp(), "jpeg", state, batch, device, 0.0, None, min_steps=0, warmup=0)
    assert reference.ok and reference.steps == 1 and reference.its > 0 and reference.loss == reference.reference_loss
    plain = measure(SetUp(gfam="plain"), "jpeg", state, batch, device, 0.0, reference.loss, min_steps=0, warmup=0)
    assert plain.ok and abs(plain.loss - reference.loss) <= 1e-5 * reference.loss  # same numbers, other code
    wrong = measure(SetUp(), "jpeg", state, batch, device, 0.0, 2 * reference.loss, min_steps=0, warmup=0)
    assert not wrong.ok and "off the reference" in wrong.note and wrong.its is None
