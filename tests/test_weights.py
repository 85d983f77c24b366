from __future__ import annotations

import pytest
import torch

import dagl
from dagl.configs import TaskError
from dagl.weights import WeightsError


def test_official_checkpoint_loads_unchanged(official_checkpoint):
    path = official_checkpoint("jpeg")
    state = torch.load(path, weights_only=True)
    model = dagl.load("jpeg", weights=path)
    assert not model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)
    x = torch.rand(1, 1, 24, 28)
    reference = dagl.create("jpeg", gfam="plain")
    reference.load_state_dict({k: v for k, v in state.items() if not k.startswith("add_mean")})
    with torch.no_grad():
        assert (model(x) - reference.eval()(x)).abs().max().item() <= 1e-5


def test_checkpoint_for_another_task_names_key_and_shapes(official_checkpoint):
    with pytest.raises(WeightsError, match=r"'head.0.weight': checkpoint has shape \(64, 1, 3, 3\), "
                                           r"model expects \(64, 3, 3, 3\)"):
        dagl.load("real-denoise", weights=official_checkpoint("jpeg"))


def test_missing_and_unexpected_keys_are_refused(tmp_path, official_checkpoint):
    state = torch.load(official_checkpoint("jpeg"), weights_only=True)
    missing = dict(state)
    del missing["body.8.c3_4.fc2.0.bias"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match="missing key 'body.8.c3_4.fc2.0.bias'"):
        dagl.load("jpeg", weights=tmp_path / "missing.pt")
    # A 16-ResBlock checkpoint into the 32-ResBlock demosaic net: shapes match, layout does not.
    with pytest.raises(WeightsError, match="missing key|unexpected key|shape"):
        dagl.load("demosaic", weights=official_checkpoint("real-denoise"))
    extra = dict(state, **{"body.8.c1_1.extra": torch.zeros(2)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match="unexpected key 'body.8.c1_1.extra'"):
        dagl.load("jpeg", weights=tmp_path / "extra.pt")


def test_unreadable_weights_are_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights"):
        dagl.load("jpeg", weights=bad)
    with pytest.raises(WeightsError, match="not found"):
        dagl.load("jpeg", weights=tmp_path / "absent.pt")


def test_safetensors_round_trip_fp16_storage(tmp_path, official_checkpoint):
    model = dagl.load("jpeg", weights=official_checkpoint("jpeg"))
    path = dagl.save_safetensors(model, tmp_path / "w.safetensors", fp16=True)
    again = dagl.load("jpeg", weights=path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value.half().float(), rtol=0, atol=0)


def test_data_parallel_prefix_is_accepted(tmp_path, official_checkpoint):
    state = torch.load(official_checkpoint("jpeg"), weights_only=True)
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "dp.pt")
    dagl.load("jpeg", weights=tmp_path / "dp.pt")


def test_no_shipped_weights_is_explained():
    with pytest.raises(TaskError, match="pass --sigma"):
        dagl.shipped_weights("denoise")
    with pytest.raises(TaskError, match="sigma 30 is not one"):
        dagl.shipped_weights("denoise", 30)
