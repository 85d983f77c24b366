"""A rehearsal of the GPU window on the CPU: tools/gpu_window.py pack, then run, exactly as the lent machine
would be called, at a tiny size (2 iterations of 2 crops of 16x16, scores on one 44x44 crop per set).

The call there gets one try, so every file, key and number it returns is checked here first. Nothing
depends on the machine's speed: the deadline (an hour) and each step's hang guard (minutes) are far
beyond what these steps need, the training is capped at 2 iterations, and no assertion is on time.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from safetensors import safe_open

import dagl
from scoring import CROP, independent_psnr

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "gpu_window.py"
INIT = REPO / "dagl" / "weights" / "dagl-jpeg.safetensors"
INIT_IN_CHECKOUT = "dagl/weights/dagl-jpeg.safetensors"  # as the card records it
TINY_TRAIN = ["--n-images", "8", "--patch", "16", "--batch-size", "2", "--iterations", "2", "--workers", "0",
              "--val-crop", "16", "--val-limit", "1", "--device", "cpu"]


def _iterations(weights: Path) -> int:
    with safe_open(str(weights), framework="pt") as fh:
        return int(fh.metadata()["dagl.iterations"])


@pytest.fixture(scope="module")
def window(datasets_dir, tmp_path_factory) -> Path:
    """What the rehearsed call returns: its --out folder."""
    root = tmp_path_factory.mktemp("gpu-window")
    # The run's own work folder (the checkpoint, ~66 MiB) goes under the test's temporary folder.
    env = dict(os.environ, TMPDIR=str(root))
    packed = subprocess.run([sys.executable, str(TOOL), "pack", "--no-wheels", "--datasets", str(datasets_dir),
                             "--into", str(root / "data")], capture_output=True, text=True, env=env, timeout=600)
    assert packed.returncode == 0, packed.stderr[-3000:]
    ran = subprocess.run([sys.executable, str(TOOL), "run", "--data-root", str(root / "data"), "--out",
                          str(root / "out"), "--budget", "3600", "--score-option=--limit", "--score-option=1",
                          "--score-option=--crop", f"--score-option={CROP}", "--timing-size", str(CROP),
                          "--timing-repeats", "1", "--keep-scale", "4", "--", *TINY_TRAIN],
                         capture_output=True, text=True, env=env, timeout=3600 + 300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return root


@pytest.mark.slow
def test_pack_copies_the_training_and_test_files(window, datasets_dir):
    data = window / "data"
    assert sorted(p.name for p in (data / "train" / "bsd400").iterdir()) == sorted(
        p.name for p in (datasets_dir / "train" / "bsd400").glob("*.png"))
    for name in ("classic5", "live1"):
        first = sorted((datasets_dir / name).glob("*.bmp"))[0]
        assert (data / name / first.name).read_bytes() == first.read_bytes()
        jpeg = Path(name) / "jpeg_q10" / f"{first.stem}.jpeg"
        assert (data / jpeg).read_bytes() == (datasets_dir / jpeg).read_bytes()


@pytest.mark.slow
def test_the_window_returns_four_files_that_say_what_it_trained_and_scored(window, datasets_dir):
    out = window / "out"
    assert sorted(p.name for p in out.iterdir()) == ["dagl-jpeg.md", "dagl-jpeg.safetensors", "gpu-window.json",
                                                     "gpu-window.tar.gz"]
    summary = json.loads((out / "gpu-window.json").read_text())
    steps = {step["step"]: step for step in summary["steps"]}
    # Checkout-relative paths (dagl-train runs from the checkout): the card that ships names no machine's folders.
    assert steps["train"]["returncode"] == 0
    assert f"--init {INIT_IN_CHECKOUT} " in steps["train"]["command"]
    for name in ("score classic5 q10", "score live1 q10", "timing", "parity"):
        assert name in steps and "skipped" not in steps[name], name
    facts = summary["training"]
    assert (facts["iterations"], facts["batch_size"], facts["patch"], facts["init"]) == (2, 2, 16, INIT_IN_CHECKOUT)
    # The weights that came back: the start continued by 2 iterations, or the start itself written back
    # when it validated better on the held-out split; the card says which.
    weights = out / "dagl-jpeg.safetensors"
    model = dagl.load("jpeg", weights=weights)
    assert model is not None
    card = (out / "dagl-jpeg.md").read_text()
    start = _iterations(INIT)
    assert f"Iterations: 2 in this run + {start} before = {start + 2}" in card
    assert _iterations(weights) == (start if "STARTING weights" in card else start + 2)
    # dagl-eval's scores there, recomputed here on the original test files.
    for name in ("classic5", "live1"):
        _, restored = independent_psnr(weights, datasets_dir / name)
        assert summary["scores"][f"{name} q10"] == pytest.approx(restored, abs=1e-3), name
        x8 = summary["scores"].get(f"{name} q10 x8")
        if x8 is not None:  # runs on what the deadline leaves
            assert x8 == pytest.approx(independent_psnr(weights, datasets_dir / name, ensemble=True)[1], abs=1e-3)
    timing = summary["timing"]
    assert {(r["precision"], r["tiling"]) for r in timing["results"]} == {
        (p, t) for p in ("fp32", "fp16", "bf16") for t in ("whole", "reference chop")}
    assert all(r["size"] == CROP and math.isfinite(r["median_seconds"]) for r in timing["results"])


@pytest.mark.slow
def test_the_archive_holds_the_logs_and_the_score_reports(window):
    with tarfile.open(window / "out" / "gpu-window.tar.gz") as archive:
        names = set(archive.getnames())
        log = archive.extractfile("train/run/train.log").read().decode()
    assert {"gpu-window.log", "train/run/train.log", "timing.json", "score-classic5-q10/classic5-q10.csv",
            "score-classic5-q10/classic5-q10.md", "score-live1-q10/live1-q10.csv",
            "score-live1-q10/live1-q10.md"} <= names
    assert not any(n.endswith((".pt", ".safetensors")) for n in names)  # the weights travel as their own file
    assert "done: 2 iterations this session" in log and "held-out PSNR" in log
