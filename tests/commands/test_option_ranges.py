"""Every numeric option has a range a user would accept, checked by click before any work:
one line ``dagl-X: error: ...`` and exit 2, never a traceback, a crash or a hang."""

from __future__ import annotations

import numpy as np
import pytest

from dagl.cli.common import MAX_THREADS

TRAIN = ["--task", "jpeg", "--data", "nowhere", "--iterations", "1"]


def _with_data(tmp_path):
    """dagl-train's options with a data folder of one real image: the folder checks (which come first, before
    torch imports) pass, so what is refused is the option under test, still before any data loads."""
    from dagl.images.io import write_image

    (tmp_path / "data").mkdir()
    write_image(tmp_path / "data" / "one.png", np.full((64, 64), 0.5, np.float32), 8)
    return ["--task", "jpeg", "--data", str(tmp_path / "data"), "--iterations", "1"]


def _refused(command, args, capsys, expected):
    code = command.run(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"{command.name}: error: ") and expected in err[0], err[0]


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--lr", "nan", "'nan' is not a finite number"),
    ("--lr", "inf", "'inf' is not a finite number"),
    ("--lr", "0", "0.0 is not in the range x>0"),
    ("--time-budget", "nan", "'nan' is not a finite number"),
    ("--seed", "-1", "-1 is not in the range 0<=x<=4294967295"),
    ("--seed", str(2**70), "is not in the range 0<=x<=4294967295"),
    ("--device", "bogus", "'bogus' is not one of cpu, cuda, cuda:N"),
    ("--device", "cuda:x", "is not one of cpu, cuda, cuda:N"),
])
def test_dagl_train_refuses_out_of_range_options(capsys, option, value, expected):
    from dagl.train.cli import command

    _refused(command, [*TRAIN, option, value], capsys, expected)


def test_dagl_train_refuses_cuda_without_a_gpu(capsys, monkeypatch):
    import torch

    from dagl.train.cli import command

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _refused(command, [*TRAIN, "--device", "cuda:0"], capsys, "torch sees no CUDA GPU on this machine")


def test_dagl_train_takes_the_largest_seed(capsys, tmp_path):
    """2**32 - 1 is a valid seed: the run goes on to the data check (an empty folder here)."""
    from dagl.train.cli import command

    (tmp_path / "empty").mkdir()
    command.run(["--task", "jpeg", "--data", str(tmp_path / "empty"), "--iterations", "1", "--seed",
                 str(2**32 - 1), "--device", "cpu", "--out", str(tmp_path / "run")])
    assert "seed" not in capsys.readouterr().err


@pytest.mark.parametrize("threads", ["0", "100000", "4096", str(MAX_THREADS + 1)])
@pytest.mark.parametrize("prog", ["dagl-infer", "dagl-bench"])
def test_threads_are_bounded_by_the_machine(capsys, tmp_path, prog, threads):
    from runtime.bench import main as bench
    from runtime.cli import main as infer

    command = {"dagl-infer": infer, "dagl-bench": bench}[prog]
    args = [str(tmp_path / "m.onnx"), *([str(tmp_path / "x.png")] if prog == "dagl-infer" else [])]
    _refused(command, [*args, "--threads", threads], capsys, f"is not in the range 1<=x<={MAX_THREADS}")
    assert 1 <= MAX_THREADS <= 256


def test_training_estimate_bounds_the_measured_peaks():
    """The fitted training formula against the ru_maxrss figures in dagl/memory.py (MiB): -10 % to +15 % from 64 px."""
    from dagl.memory import estimate_training_bytes

    for patch, batch, measured in ((48, 1, 243), (64, 1, 579), (64, 2, 1168), (96, 1, 2253), (128, 1, 5200)):
        estimate = estimate_training_bytes(patch, batch) / 2**20
        assert measured * 0.9 <= estimate <= measured * (1.25 if patch < 64 else 1.15), (patch, batch, estimate)


def test_dagl_train_refuses_a_batch_over_the_memory_budget_before_loading_data(capsys, tmp_path):
    """--batch-size 32 of 128 px crops: about 173 GiB by the estimate, refused before the (missing) data is read."""
    from dagl.memory import estimate_training_bytes, memory_budget
    from dagl.train.cli import command

    assert estimate_training_bytes(128, 32) > memory_budget("cpu")
    _refused(command, [*_with_data(tmp_path), "--device", "cpu", "--patch", "128", "--batch-size", "32", "--out",
                       str(tmp_path / "run")], capsys,
             "training on 32 crop(s) of 128x128 px per process would need about 172.8 GiB")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_dagl_train_refuses_a_validation_crop_over_the_budget(capsys, tmp_path):
    from dagl.train.cli import command

    _refused(command, [*_with_data(tmp_path), "--device", "cpu", "--patch", "16", "--batch-size", "1", "--val",
                       "set12", "--val-crop", "2000", "--out", str(tmp_path / "run")], capsys, "use a smaller --val-crop")
