"""The training window on CPU at a tiny size, end to end through tools/gpu-window.sh, and its parts.

A lent GPU window is one ~9-minute device run with no second try, so everything CI can catch runs
here first: data preparation, the throughput probe, the budgeted training from --init with the
keep-the-better rule, the returned files within the device's limits, the paper-protocol numbers
and the report. The GPU-only parts (CUDA parity, real timings) run, and skip, the same code path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dagl
from dagl.train.probe import SetUp, measure
from dagl.train.window import STEM, main as window_main
from dagl.train.window_files import PART_LIMIT_BYTES, join_float32, split_state, write_float32_parts
from dagl.weights import WeightsError

REPO = Path(__file__).resolve().parents[1]
WINDOW_BUDGET = 90  # seconds for the tiny window; it caps itself at 6 iterations, so an idle machine ends early
#: Tiny mode keeps 15 s after training; the steps after it (a few forward passes each) always run, and on
#: two loaded cores they can outlast that: only the probe and the training are held to the budget.
TINY_AFTER_SECONDS = 15
RETURN_LIMIT_FILES, RETURN_LIMIT_BYTES = 8, 16 * 2**20


@pytest.fixture(scope="module")
def window_data(datasets_dir, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("window") / "data"
    assert window_main(["prepare", "--datasets", str(datasets_dir), "--dest", str(dest)]) == 0
    return dest


def test_prepare_copies_the_training_set_and_the_q10_sets_within_the_travel_limit(window_data, datasets_dir):
    assert len(list((window_data / "train" / "bsd400").glob("*.png"))) == 400
    for name in ("classic5", "live1"):
        clean = sorted(p.name for p in (datasets_dir / name).glob("*.bmp"))
        assert sorted(p.name for p in (window_data / name).glob("*.bmp")) == clean
        assert len(list((window_data / name / "jpeg_q10").glob("*.jpeg"))) == len(clean)
    assert not (window_data / "live1" / "jpeg_q20").exists()  # only what the window uses travels
    size = sum(p.stat().st_size for p in window_data.rglob("*") if p.is_file())
    assert 15 * 2**20 < size < 60 * 2**20


def test_float32_parts_fit_the_return_limit_and_join_bit_exactly(tmp_path):
    torch.manual_seed(2)
    state = dagl.create("jpeg").state_dict()
    parts = write_float32_parts(state, tmp_path, STEM, {"dagl.iterations": "12"})
    assert [p.name for p in parts] == [f"{STEM}-fp32.part1.safetensors", f"{STEM}-fp32.part2.safetensors"]
    sizes = [p.stat().st_size for p in parts]
    assert max(sizes) < PART_LIMIT_BYTES and abs(sizes[0] - sizes[1]) < 0.02 * sum(sizes)
    joined = join_float32(parts, tmp_path / "whole.safetensors")
    model = dagl.load("jpeg", weights=joined)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value)
    with pytest.raises(WeightsError, match="do not make one whole state"):
        join_float32(parts[:1], tmp_path / "half.safetensors")
    assert len(split_state(state, 3)) == 3


def test_the_probe_accepts_the_reference_and_rejects_a_set_up_whose_loss_is_off(datasets_dir):
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


def _independent_psnr(weights: Path, datasets: Path, name: str, crop: int) -> tuple[float, float]:
    """scikit-image PSNR of the input and of the restored centre crop of the set's first q10 image."""
    from skimage.metrics import peak_signal_noise_ratio

    first = sorted((datasets / name).glob("*.bmp"))[0]
    clean = np.asarray(Image.open(first).convert("L"), np.float32) / 255
    jpeg = np.asarray(Image.open(datasets / name / "jpeg_q10" / f"{first.stem}.jpeg"), np.float32)[..., 0] / 255
    top, left = ((n - crop) // 2 // 2 * 2 for n in clean.shape)
    window = (slice(top, top + crop), slice(left, left + crop))
    model = dagl.load("jpeg", weights=weights)
    with torch.no_grad():  # 44x44 is under the reference chop's threshold: one tile, the whole crop
        restored = model(torch.from_numpy(jpeg[window].copy())[None, None])[0, 0].numpy()
    return (peak_signal_noise_ratio(clean[window], jpeg[window], data_range=1.0),
            peak_signal_noise_ratio(clean[window], np.clip(restored, 0, 1), data_range=1.0))


def test_the_tiny_window_runs_end_to_end_and_returns_what_a_gpu_window_returns(tmp_path, window_data,
                                                                                datasets_dir):
    torch.manual_seed(3)
    init = dagl.save_safetensors(dagl.create("jpeg"), tmp_path / "init.safetensors", fp16=True,
                                 metadata={"dagl.iterations": "5"})
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, DAGL_WINDOW_DATA=str(window_data),
               DAGL_WINDOW_SECONDS=str(WINDOW_BUDGET), DAGL_WINDOW_NO_INSTALL="1")
    started = time.monotonic()
    done = subprocess.run(["bash", "tools/gpu-window.sh", "--tiny", "--init", str(init), "--snapshot-seconds", "0"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=WINDOW_BUDGET + 60)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert wall < 3 * WINDOW_BUDGET  # a hang, not a slow machine
    # What comes back: the device returns at most 8 files of at most 16 MiB each.
    files = {p.name: p.stat().st_size for p in out.iterdir()}
    assert set(files) == {f"{STEM}.safetensors", f"{STEM}.md", f"{STEM}-fp32.part1.safetensors",
                          f"{STEM}-fp32.part2.safetensors", "train.log", "window.json", "window.md", "window.log"}
    assert len(files) <= RETURN_LIMIT_FILES and max(files.values()) < RETURN_LIMIT_BYTES
    report = json.loads((out / "window.json").read_text())
    steps = report["steps"]
    assert [steps[s].get("ok") for s in ("probe", "train", "evaluate", "parity", "timing")] == [True] * 5, steps
    # Probe and training end before the time kept for the steps after them (set-up and one step of slack).
    assert steps["probe"]["seconds"] + steps["train"]["seconds"] < WINDOW_BUDGET - TINY_AFTER_SECONDS + 10
    train = steps["train"]["result"]
    # Under heavy load the budget may leave no time for an iteration (the loop is test_train_budget's).
    assert 0 <= train["iterations"] <= 6 and train["init_iterations"] == 5
    assert f"done: {train['iterations']} iterations this session" in (out / "train.log").read_text()
    # The shipped FP16 file is the float32 parts rounded: whichever weights were kept, both agree.
    whole = join_float32([out / f"{STEM}-fp32.part1.safetensors", out / f"{STEM}-fp32.part2.safetensors"],
                         tmp_path / "whole.safetensors")
    shipped, kept = dagl.read_state_dict(out / f"{STEM}.safetensors"), dagl.read_state_dict(whole)
    assert all(torch.equal(shipped[k], kept[k].half()) for k in kept)
    started_from = dagl.read_state_dict(init)
    assert all(torch.equal(shipped[k], started_from[k]) for k in kept) == (train["kept"] == "init")
    better = max(train["start_validation"]["mean"], train["trained_validation"]["mean"])
    assert better == (train["start_validation"] if train["kept"] == "init" else train["trained_validation"])["mean"]
    # Paper protocol on one 44x44 crop per set, recomputed independently.
    rows = {row["dataset"]: row for row in steps["evaluate"]["result"]}
    for name, paper in (("classic5", 30.08), ("live1", 29.70)):
        input_psnr, restored_psnr = _independent_psnr(out / f"{STEM}.safetensors", datasets_dir, name, 44)
        assert rows[name]["input_psnr"] == pytest.approx(input_psnr, abs=1e-3)
        assert rows[name]["psnr"] == pytest.approx(restored_psnr, abs=1e-3)
        assert rows[name]["paper_psnr_x8"] == paper
    parity = steps["parity"]["result"]
    assert parity["returncode"] == 0 and parity["counts"] == {"skipped": 2}  # no CUDA here: skipped, not failed
    assert steps["timing"]["result"]["shape"] == [44, 44] and steps["timing"]["result"]["fp32"]["median_seconds"] > 0
    card = (out / f"{STEM}.md").read_text()
    for fact in ("## Evaluation, paper protocol", "| classic5 q10 (1 images, 44x44 crops) |", "30.08", "29.70",
                 "it/s", "Iterations in this window", "5 iterations recorded"):
        assert fact in card
    assert f"| {rows['live1']['psnr']:.2f} |".replace("| ", "| **").replace(" |", "** |") in card
    log = (out / "window.log").read_text()
    assert "running from a copy of the tree" in log and "probe chose:" in log
    assert ("snapshot:" in log) == (train["iterations"] >= 2)  # after every step but the last
    assert "## Throughput probe" in (out / "window.md").read_text()
