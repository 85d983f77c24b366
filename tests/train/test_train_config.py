"""dagl-train's option checks live in TrainConfig: a bad combination is refused where the options are made,
with the one-line message the user gets, before any process group, network or data exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagl.train import TrainConfig, TrainingError

RESUME_BUDGET = ("--resume continues a fixed --iterations run; continue a --time-budget run "
                 "with a new run that starts from its weights (--init)")
NO_LENGTH = "pass --iterations, or --time-budget to plan them from the measured rate"
INIT_VAL = ("--init needs --val: the run validates the starting weights and ships "
            "whichever of them and the trained ones validate better")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to build a network (or join a process group) fails the test loudly."""
    from dagl.train import distributed, trainer

    def forbidden(*args, **kwargs):
        raise AssertionError("a network or process group was built for options that are refused")

    for module, name in ((trainer, "build_network"), (trainer, "seeded_network"), (distributed, "setup")):
        monkeypatch.setattr(module, name, forbidden)


@pytest.mark.parametrize("options, message", [
    (dict(iterations=None, time_budget=60.0, resume=True), RESUME_BUDGET),
    (dict(iterations=10, time_budget=60.0, resume=True), RESUME_BUDGET),
    (dict(iterations=None), NO_LENGTH),
    (dict(iterations=0), NO_LENGTH),
    (dict(iterations=10, init=Path("w.safetensors"), val=None), INIT_VAL),
    (dict(iterations=10, init=Path("w.safetensors"), val="none"), INIT_VAL),
    (dict(iterations=None, time_budget=60.0, init=Path("w.safetensors"), val=""), INIT_VAL),
])
def test_a_bad_config_is_refused_when_it_is_made(no_network, options, message):
    with pytest.raises(TrainingError) as refused:
        TrainConfig(task="jpeg", data=[Path("nowhere")], out=Path("nowhere"), **options)
    assert str(refused.value) == message


@pytest.mark.parametrize("options", [
    dict(iterations=10), dict(iterations=None, time_budget=60.0), dict(iterations=5, time_budget=60.0),
    dict(iterations=10, resume=True), dict(iterations=None, time_budget=60.0, init=Path("w")),
    dict(iterations=None, time_budget=60.0, init=Path("w"), val="my-validation-folder"),
])
def test_a_good_config_is_accepted(options):
    assert TrainConfig(task="jpeg", data=[], out=Path("x"), **options).task == "jpeg"


def test_the_global_batch_must_split_over_the_processes():
    config = TrainConfig(task="jpeg", data=[], iterations=1, out=Path("x"), batch_size=12)
    assert [config.per_rank_batch(n) for n in (1, 2, 3, 4, 6, 12)] == [12, 6, 4, 3, 2, 1]
    with pytest.raises(TrainingError) as refused:
        config.per_rank_batch(5)
    assert str(refused.value) == "--batch-size 12 (the global batch) is not divisible by the 5 processes"


def test_dagl_train_refuses_them_in_one_line_before_anything_is_built(no_network, tmp_path, capsys):
    from dagl.train.cli import main

    out = tmp_path / "run"
    args = ["--task", "jpeg", "--data", str(tmp_path), "--device", "cpu", "--out", str(out), "--batch-size", "1",
            "--patch", "16"]
    init = ["--init", str(tmp_path / "w.safetensors")]
    for extra, message in ((["--iterations", "5", *init, "--val", "none"], INIT_VAL),
                           ([], NO_LENGTH), (["--time-budget", "60", "--resume"], RESUME_BUDGET)):
        assert main([*args, *extra]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [f"dagl-train: error: {message}"]
    assert not out.exists()
