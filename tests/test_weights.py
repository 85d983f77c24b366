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


@pytest.mark.parametrize("content", [b"\x80\x02\x8a\x0a" + bytes(range(40)), b"hello world", bytes(range(256))])
def test_junk_pt_is_not_a_weights_file_in_one_line(tmp_path, content):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(content)
    with pytest.raises(WeightsError) as excinfo:
        dagl.read_state_dict(junk)
    assert str(excinfo.value) == f"cannot read weights from {junk}: not a PyTorch/safetensors weights file"


def test_training_checkpoint_is_refused_without_unpickling_it(tmp_path):
    """A dagl-train checkpoint holds NumPy RNG state: weights_only refuses it; torch's multi-line text is not shown."""
    import numpy as np

    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "rng": np.random.get_state()}, path)
    with pytest.raises(WeightsError) as excinfo:
        dagl.read_state_dict(path)
    message = str(excinfo.value)
    assert "\n" not in message and "\x1b" not in message and "not unpickled for safety" in message


def test_no_torch_load_in_the_tree_unpickles_arbitrary_objects():
    """Every torch.load / np.load outside dagl/train/checkpoint.py (the trainer's own resume file) is safe."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    unsafe = []
    for source in (p for folder in ("dagl", "runtime", "export", "calibration") for p in (root / folder).rglob("*.py")):
        if source.relative_to(root).as_posix() == "dagl/train/checkpoint.py":
            continue
        for call in re.findall(r"(?:torch|np)\.load\([^)]*\)|pickle\.loads?\(", source.read_text()):
            if "weights_only=True" not in call and "allow_pickle=False" not in call:
                unsafe.append(f"{source.name}: {call}")
    assert unsafe == []


@pytest.mark.parametrize("bad,message", [
    (lambda t: t.long(), "holds int64 values"),
    (lambda t: t > 0, "holds bool values"),
    (lambda t: t.index_fill(0, torch.tensor([0]), float("nan")), "holds 1 NaN or infinite value"),
    (lambda t: t.index_fill(0, torch.tensor([0]), float("inf")), "holds 1 NaN or infinite value"),
])
def test_non_float_or_non_finite_tensors_are_refused_by_name(bad, message):
    from dagl.weights import check_values

    state = {"head.0.weight": torch.ones(4, 1, 3, 3), "tail.0.bias": bad(torch.linspace(-1, 1, 4))}
    with pytest.raises(WeightsError, match=f"tensor 'tail.0.bias' {message}"):
        check_values(state)


def test_loading_nan_weights_names_the_tensor(tmp_path, official_checkpoint):
    state = torch.load(official_checkpoint("jpeg"), weights_only=True)
    state["tail.0.bias"] = torch.full_like(state["tail.0.bias"], float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(WeightsError, match="tensor 'tail.0.bias' holds 1 NaN or infinite value"):
        dagl.load("jpeg", weights=tmp_path / "nan.pt")
