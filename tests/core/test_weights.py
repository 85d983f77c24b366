from __future__ import annotations

import numpy as np
import pytest
import torch

import dagl
from dagl.tasks.configs import TaskError
from dagl.weights.checkpoints import WeightsError


@pytest.mark.slow
def test_official_checkpoint_loads_unchanged(official_checkpoint):
    path = official_checkpoint("jpeg")
    state = torch.load(path, weights_only=True)
    model = dagl.load("jpeg", weights=path)
    assert not model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in loaded)
    x = torch.rand(1, 1, 24, 28)
    plain = dagl.create("jpeg", gfam="plain")
    plain.load_state_dict({k: v for k, v in state.items() if not k.startswith("add_mean")})
    with torch.no_grad():
        assert (model(x) - plain.eval()(x)).abs().max().item() <= 1e-5


def test_checkpoint_for_another_task_names_key_and_shapes(official_checkpoint):
    with pytest.raises(WeightsError, match=r"'head.0.weight': checkpoint has shape \(64, 1, 3, 3\), "
                                           r"model expects \(64, 3, 3, 3\)"):
        dagl.load("real-denoise", weights=official_checkpoint("jpeg"))


@pytest.mark.slow
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


@pytest.mark.slow
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

    root = Path(__file__).resolve().parents[2]
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
    from dagl.weights.checkpoints import check_values

    state = {"head.0.weight": torch.ones(4, 1, 3, 3), "tail.0.bias": bad(torch.linspace(-1, 1, 4))}
    with pytest.raises(WeightsError, match=f"tensor 'tail.0.bias' {message}"):
        check_values(state)


def test_loading_nan_weights_names_the_tensor(tmp_path, official_checkpoint):
    state = torch.load(official_checkpoint("jpeg"), weights_only=True)
    state["tail.0.bias"] = torch.full_like(state["tail.0.bias"], float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(WeightsError, match="tensor 'tail.0.bias' holds 1 NaN or infinite value"):
        dagl.load("jpeg", weights=tmp_path / "nan.pt")


# ---- the main body's one PReLU: a file whose copies of its slope differ, on every load path --------------
#: What each path says, in one line: copies 0.25 (the PReLU's initial value) and one changed to 0.5.
UNTIED = ("the main-body ResBlocks' PReLU slopes differ (body.0.body.1.weight = 0.25, body.9.body.1.weight = 0.5; "
          "2 different values in 16 copies): the authors' network holds one slope for these blocks, "
          "so it cannot hold this file")


def untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with body.9's copy of the shared slope changed (copies share storage in a saved state dict)."""
    state = {k: v.clone() for k, v in state.items()}
    state["body.9.body.1.weight"] = torch.tensor([0.5])
    return state


@pytest.fixture
def untied_files(tmp_path, official_checkpoint) -> list:
    """The same untied weights as an official-format .pt and as an FP16 .safetensors."""
    from safetensors.torch import save_file

    state = untie(torch.load(official_checkpoint("jpeg"), weights_only=True))
    torch.save(state, tmp_path / "untied.pt")
    save_file({k: v.half() for k, v in state.items()}, str(tmp_path / "untied.safetensors"))
    return [tmp_path / "untied.pt", tmp_path / "untied.safetensors"]


def test_differing_copies_of_the_shared_slope_are_refused_in_one_line_and_nothing_loads(untied_files):
    for path in untied_files:
        model = dagl.create("jpeg")
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(WeightsError) as excinfo:
            dagl.load_into(model, path)
        assert str(excinfo.value) == UNTIED
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # refused before any copy
    model = dagl.create("jpeg")
    with pytest.raises(WeightsError, match="slopes differ"):  # load_state_dict itself, under a wrapper's prefix too
        torch.nn.Sequential(model).load_state_dict({"0." + k: v for k, v in untie(model.state_dict()).items()})


def test_dagl_infer_refuses_differing_copies_in_one_line(untied_files, tmp_path):
    from click.testing import CliRunner

    from dagl.images.io import write_image
    from dagl.runtime.cli import main

    image = write_image(tmp_path / "in.png", np.zeros((16, 16), np.float32), 8)
    for path in untied_files:
        result = CliRunner().invoke(main, [str(path), str(image), "--task", "jpeg", "-o", str(tmp_path / "o.png")])
        assert result.exit_code == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [f"dagl-infer: error: {UNTIED}"]
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_dagl_train_refuses_differing_copies_for_init_and_resume(untied_files, tmp_path, datasets_dir, capsys):
    from dagl.train import TrainConfig, Trainer, distributed
    from dagl.train.cli import main

    data = datasets_dir / "train" / "bsd400"
    common = ["--task", "jpeg", "--data", str(data), "--iterations", "2", "--batch-size", "2", "--patch", "16",
              "--n-images", "4", "--workers", "0", "--val-crop", "16"]
    assert main([*common, "--out", str(tmp_path / "init"), "--init", str(untied_files[1]), "--val-limit", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"dagl-train: error: --init: {UNTIED}"]

    out = tmp_path / "run"
    Trainer(TrainConfig(task="jpeg", data=[data], iterations=1, out=out, batch_size=2, patch=16, workers=0,
                        n_images=4, val_every=0, val_crop=16, val_limit=1, log_every=1), distributed.setup("cpu")).fit()
    capsys.readouterr()
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    slope = checkpoint["model"]["body.0.body.1.weight"].item()
    checkpoint["model"] = untie(checkpoint["model"])
    torch.save(checkpoint, out / "checkpoint.pt")
    assert main([*common, "--out", str(out), "--resume"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == "dagl-train: error: " + UNTIED.replace("0.25", f"{slope:.4g}")
