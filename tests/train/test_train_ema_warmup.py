"""--ema (the moving average of the weights validates, ships and resumes) and --warmup (linear lr
ramp before the schedule), on CPU at a tiny size; the expected values are computed by hand here."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dagl
from dagl.train import Trainer, TrainingError, distributed
from dagl.train.cli import main
from dagl.train.schedule import LrSchedule
from tiny_training import tiny
from tiny_training import free_port


@pytest.fixture(scope="module")
def bsd400(datasets_dir: Path) -> Path:
    return datasets_dir / "train" / "bsd400"


def fp16(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` as the FP16 release file stores it, read back as float32."""
    return {k: v.detach().half().float() for k, v in state.items()}


# ---- --warmup --------------------------------------------------------------------------------
def test_warmup_ramps_linearly_then_hands_over_to_the_step_decay():
    schedule = LrSchedule("step", step=6, gamma=0.5, warmup=4)
    # (i + 1) / 4 for i < 4, then the paper's halving every 6 iterations, counted from 0.
    assert [schedule(i) for i in range(14)] == [0.25, 0.5, 0.75, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
                                                0.25, 0.25]
    assert [LrSchedule("step", step=6, gamma=0.5)(i) for i in (0, 5, 6)] == [1, 1, 0.5]  # no warm-up: as before


def test_warmup_then_a_cosine_over_the_iterations_after_it():
    schedule = LrSchedule("cosine", warmup=4, floor=0.01)
    assert [schedule(i) for i in (0, 1, 3, 4, 50)] == [0.25, 0.5, 1, 1, 1]  # total not planned yet: flat
    schedule.total = 14  # 10 iterations of cosine after the 4 of warm-up
    assert [schedule(i) for i in (0, 1, 2, 3, 4)] == [0.25, 0.5, 0.75, 1, 1]
    # Half-way through the cosine (iteration 4 + 5): floor + (1 - floor) * (1 + cos(pi / 2)) / 2 = 0.505.
    assert schedule(9) == pytest.approx(0.505, abs=1e-15)
    assert schedule(6) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.2)), abs=1e-15)
    assert schedule(14) == pytest.approx(0.01) and schedule(30) == pytest.approx(0.01)
    assert "warm-up over 4 it" in schedule.describe(1e-3)


def test_the_optimiser_steps_at_the_warmup_lrs(tmp_path, bsd400):
    trainer = Trainer(tiny(tmp_path, bsd400, iterations=5, lr=1e-3, warmup=4, val="none"), distributed.setup("cpu"))
    noisy, clean = next(trainer.batches())
    used = []
    for _ in range(5):
        used.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.train_step(noisy, clean)
    assert used == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3], rel=1e-12)


# ---- --ema -----------------------------------------------------------------------------------
def test_the_ema_is_the_moving_average_of_the_iterates(tmp_path, bsd400):
    trainer = Trainer(tiny(tmp_path, bsd400, iterations=3, lr=1e-4, ema=0.75, val="none"), distributed.setup("cpu"))
    noisy, clean = next(trainer.batches())
    iterates = [{k: v.detach().clone() for k, v in trainer.model.state_dict().items()}]
    for _ in range(3):
        trainer.train_step(noisy, clean)
        iterates.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})
    # The average starts at the starting weights (not at the first iterate), then ema <- 0.75 ema + 0.25 w.
    expected = iterates[0]
    for weights in iterates[1:]:
        expected = {k: 0.75 * expected[k] + 0.25 * weights[k] for k in expected}
    averaged = trainer.shipping_model().state_dict()
    assert averaged.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(averaged[key], value, rtol=1e-6, atol=1e-9, msg=key)
    moved = [k for k in expected if not torch.equal(iterates[-1][k], iterates[0][k])]
    assert moved and any(not torch.allclose(averaged[k], iterates[-1][k]) for k in moved)  # not the last iterate
    # The main body's one PReLU stays one parameter in the average.
    slopes = [trainer.shipping_model().get_parameter(k) for k in trainer.model.tied_slope_keys()]
    assert len(slopes) > 1 and all(s is slopes[0] for s in slopes)


@pytest.mark.slow
def test_ema_resume_is_bit_identical_to_a_straight_run(tmp_path, bsd400):
    ctx = distributed.setup("cpu")
    options = dict(lr_step=1, lr=1e-4, ema=0.9, warmup=2, val="none")
    straight = Trainer(tiny(tmp_path / "a", bsd400, iterations=4, **options), ctx)
    straight.fit()
    Trainer(tiny(tmp_path / "b", bsd400, iterations=2, **options), ctx).fit()
    resumed = Trainer(tiny(tmp_path / "b", bsd400, iterations=4, resume=True, **options), ctx)
    assert resumed.iteration == 2 and int(resumed.ema.n_averaged) == 3  # the start + 2 steps
    resumed.fit()
    assert resumed.losses == straight.losses[2:]
    for key, value in straight.ema.state_dict().items():
        assert torch.equal(resumed.ema.state_dict()[key], value), key
    shipped = [dagl.read_state_dict(t.out / "dagl-denoise-s25.safetensors") for t in (straight, resumed)]
    assert shipped[0].keys() == shipped[1].keys()
    assert all(torch.equal(shipped[0][k], shipped[1][k]) for k in shipped[0])
    # What shipped is the average (FP16-stored), not the last iterate.
    average, last = straight.ema.module.state_dict(), straight.model.state_dict()
    assert all(torch.equal(shipped[0][k], average[k].half()) for k in average)
    assert not all(torch.equal(shipped[0][k], last[k].half()) for k in last)


@pytest.mark.slow
def test_resume_refuses_another_ema_or_warmup(tmp_path, bsd400):
    ctx = distributed.setup("cpu")
    Trainer(tiny(tmp_path, bsd400, iterations=1, val="none"), ctx).fit()
    with pytest.raises(TrainingError, match="ema"):
        Trainer(tiny(tmp_path, bsd400, iterations=2, ema=0.9, val="none", resume=True), ctx)
    with pytest.raises(TrainingError, match="warmup"):
        Trainer(tiny(tmp_path, bsd400, iterations=2, warmup=3, val="none", resume=True), ctx)
    # A checkpoint written before these options existed resumes as a run without them.
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for key in ("ema", "warmup"):
        del state["config"][key]
    torch.save(state, tmp_path / "checkpoint.pt")
    assert Trainer(tiny(tmp_path, bsd400, iterations=2, val="none", resume=True), ctx).iteration == 1


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_a_decay_outside_0_1_is_refused(tmp_path, bsd400, decay):
    with pytest.raises(TrainingError, match="--ema"):
        tiny(tmp_path, bsd400, ema=decay)
    assert main(["--task", "jpeg", "--data", str(bsd400), "--iterations", "1", "--ema", str(decay),
                 "--out", str(tmp_path)]) != 0


@pytest.mark.slow
@pytest.mark.parametrize("start, trained, kept", [(30.0, 20.0, "init"), (20.0, 30.0, "trained")])
def test_init_is_compared_against_the_ema_and_the_ema_ships(tmp_path, bsd400, monkeypatch, start, trained, kept):
    torch.manual_seed(5)
    init = dagl.save_safetensors(dagl.create("jpeg"), tmp_path / "init.safetensors", fp16=True)
    validated: list[dict[str, torch.Tensor]] = []
    scores = [start, trained]

    def scripted(self, model):
        validated.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"mean": scores[len(validated) - 1]}

    monkeypatch.setattr(Trainer, "validate", scripted)
    config = tiny(tmp_path / "run", bsd400, task="jpeg", sigma=None, iterations=3, init=init, val="held-out",
                  val_crop=16, val_limit=1, lr=1e-4, ema=0.5)
    trainer = Trainer(config, distributed.setup("cpu"))
    weights = trainer.fit()
    # The end validates the reloaded FP16 file of the average, not of the last iterate.
    average = fp16(trainer.ema.module.state_dict()) if kept == "trained" else None
    last = fp16(trainer.model.state_dict())
    if kept == "trained":
        assert all(torch.equal(validated[1][k], average[k]) for k in average)
    assert not all(torch.equal(validated[1][k], last[k]) for k in last)
    assert trainer.kept == kept
    shipped = dagl.read_state_dict(weights)
    expected = dagl.read_state_dict(init) if kept == "init" else {k: v.half() for k, v in average.items()}
    assert all(torch.equal(shipped[k], expected[k]) for k in expected)
    card = weights.with_suffix(".md").read_text()
    assert "decay 0.5 (EMA)" in card


# ---- under DDP -------------------------------------------------------------------------------
@pytest.mark.slow
def test_torchrun_trains_an_ema_with_warmup_on_two_cpu_processes(tmp_path, bsd400):
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(free_port()), "-m", "dagl.train.cli", "--task", "denoise", "--sigma", "25", "--data", str(bsd400),
           "--iterations", "3", "--batch-size", "4", "--patch", "16", "--n-images", "4", "--workers", "0",
           "--log-every", "1", "--out", str(out), "--device", "cpu", "--val", "none", "--lr", "1e-3",
           "--ema", "0.5", "--warmup", "4"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    log = (out / "train.log").read_text()
    assert "decay 0.5" in log and "warm-up over 4 it" in log
    # Each line shows the lr of the next step: 2/4, 3/4, 4/4 of 1e-3.
    assert re.findall(r"train it .* lr (\S+)", log) == ["5.000e-04", "7.500e-04", "1.000e-03"]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["iteration"] == 3 and int(state["ema"]["n_averaged"]) == 4  # the start + 3 steps
    shipped = dagl.read_state_dict(out / "dagl-denoise-s25.safetensors")
    average = {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}
    assert all(torch.equal(shipped[k], average[k].half()) for k in average)
    assert not all(torch.equal(shipped[k], state["model"][k].half()) for k in state["model"])
