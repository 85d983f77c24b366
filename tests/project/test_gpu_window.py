"""A rehearsal of the GPU window on the CPU: tools/gpu_window.py pack, then run, exactly as the lent machine
would be called, at a tiny size (2 iterations of 2 crops of 16x16, scores on one 44x44 crop per set), for the
jpeg leg and for the denoise sigma-25 leg (``--task denoise``).

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
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import dagl
from dagl.weights.checkpoints import weights_metadata
from scoring import CROP, independent_denoise_psnr, independent_psnr

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "gpu_window.py"
INIT = REPO / "dagl" / "weights" / "dagl-jpeg.safetensors"
INIT_IN_CHECKOUT = "dagl/weights/dagl-jpeg.safetensors"  # as the card records it
TINY_TRAIN = ["--n-images", "8", "--patch", "16", "--batch-size", "2", "--iterations", "2", "--workers", "0",
              "--val-crop", "16", "--val-limit", "1", "--device", "cpu"]


def _iterations(weights: Path) -> int:
    with safe_open(str(weights), framework="pt") as fh:
        return int(fh.metadata()["dagl.iterations"])


def _rehearse(root: Path, datasets_dir: Path, pack: list[str], run: list[str]) -> Path:
    """pack, then run with a deadline of an hour, the tiny training and scores on one crop; returns the folder
    that holds data/ (what pack wrote) and out/ (what the call returns)."""
    # The run's own work folder (the checkpoint, ~66 MiB) goes under the test's temporary folder.
    env = dict(os.environ, TMPDIR=str(root))
    packed = subprocess.run([sys.executable, str(TOOL), "pack", "--no-wheels", "--datasets", str(datasets_dir),
                             "--into", str(root / "data"), *pack], capture_output=True, text=True, env=env, timeout=600)
    assert packed.returncode == 0, packed.stderr[-3000:]
    ran = subprocess.run([sys.executable, str(TOOL), "run", "--data-root", str(root / "data"), "--out",
                          str(root / "out"), "--budget", "3600", "--score-option=--limit", "--score-option=1",
                          "--score-option=--crop", f"--score-option={CROP}", "--keep-scale", "4", *run,
                          "--", *TINY_TRAIN], capture_output=True, text=True, env=env, timeout=3600 + 300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def window(datasets_dir, tmp_path_factory) -> Path:
    """What the rehearsed call returns: its --out folder."""
    return _rehearse(tmp_path_factory.mktemp("gpu-window"), datasets_dir, [],
                     ["--timing-size", str(CROP), "--timing-repeats", "1"])


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


# ---- the denoise sigma-25 leg: pack --task denoise, run --task denoise ------------------------------------
SHARED_START = REPO.parent / "shared" / "weights" / "dagl-denoise-s25-cpu-start.safetensors"


@pytest.fixture(scope="module")
def denoise_window(datasets_dir, tmp_path_factory) -> Path:
    if not SHARED_START.is_file():
        pytest.skip(f"no sigma-25 start at {SHARED_START}")
    return _rehearse(tmp_path_factory.mktemp("gpu-window-denoise"), datasets_dir,
                     ["--task", "denoise", "--weights", str(SHARED_START.parent)], ["--task", "denoise"])


@pytest.mark.slow
def test_denoise_pack_holds_the_training_images_bsd68_and_the_start_with_its_slopes_tied(denoise_window, datasets_dir):
    data = denoise_window / "data"
    assert sorted(p.name for p in data.iterdir()) == ["bsd68", "start", "train"]  # no classic5/live1: it must fit
    for folder in ("train/bsd400", "bsd68"):
        assert sorted(p.name for p in (data / folder).iterdir()) == sorted(
            p.name for p in (datasets_dir / folder).glob("*.png"))
    first = sorted((datasets_dir / "bsd68").glob("*.png"))[0]
    assert (data / "bsd68" / first.name).read_bytes() == first.read_bytes()
    tied_path = data / "start" / SHARED_START.name
    tied, original = load_file(tied_path), load_file(SHARED_START)
    slopes = dagl.create("denoise").tied_slope_keys()
    assert len({float(original[k]) for k in slopes}) > 1  # the start's slopes were trained apart
    mean = torch.stack([original[k].float() for k in slopes]).mean(0).half()
    assert all(torch.equal(tied[k], mean) for k in slopes)
    assert tied.keys() == original.keys() and all(
        torch.equal(tied[k], original[k]) and tied[k].dtype == torch.float16 for k in original if k not in slopes)
    meta = weights_metadata(tied_path)
    assert (meta["dagl.iterations"], meta["dagl.sigma"]) == ("11244", "25")
    assert "tied to their mean" in meta["dagl.tied"]


@pytest.mark.slow
def test_the_denoise_window_returns_its_four_files_and_scores_bsd68_sigma_25(denoise_window, datasets_dir):
    out = denoise_window / "out"
    assert sorted(p.name for p in out.iterdir()) == ["dagl-denoise-s25.md", "dagl-denoise-s25.safetensors",
                                                     "gpu-window.json", "gpu-window.tar.gz"]
    summary = json.loads((out / "gpu-window.json").read_text())
    assert (summary["task"], summary["sigma"]) == ("denoise", 25)
    steps = {step["step"]: step for step in summary["steps"]}
    # It continues the shipped dagl-denoise-s25 weights (as the card records a path in the checkout), or while
    # none ship the start pack tied.
    shipped = Path("dagl/weights/dagl-denoise-s25.safetensors")
    start = shipped if (REPO / shipped).is_file() else denoise_window / "data" / "start" / SHARED_START.name
    before = int(weights_metadata(REPO / start)["dagl.iterations"])
    assert steps["train"]["returncode"] == 0
    assert "--task denoise " in steps["train"]["command"] and "--sigma 25 " in steps["train"]["command"]
    assert f"--init {start} " in steps["train"]["command"]
    assert "skipped" not in steps["score bsd68 s25"] and steps["score bsd68 s25"]["returncode"] == 0
    assert "timing" not in steps and "parity" not in steps  # the runtime's measurements are the jpeg window's
    facts = summary["training"]
    assert (facts["iterations"], facts["batch_size"], facts["patch"], facts["init"]) == (2, 2, 16, str(start))
    weights = out / "dagl-denoise-s25.safetensors"
    card = (out / "dagl-denoise-s25.md").read_text()
    assert f"Iterations: 2 in this run + {before} before = {before + 2}" in card
    assert _iterations(weights) == (before if "STARTING weights" in card else before + 2)
    # dagl-eval's BSD68 sigma-25 score there, recomputed here: the release's seeded noise on the original file.
    _, restored = independent_denoise_psnr(weights, datasets_dir / "bsd68", 25)
    assert summary["scores"]["bsd68 s25"] == pytest.approx(restored, abs=1e-3)
    x8 = summary["scores"].get("bsd68 s25 x8")
    if x8 is not None:  # runs on what the deadline leaves
        assert x8 == pytest.approx(independent_denoise_psnr(weights, datasets_dir / "bsd68", 25, ensemble=True)[1],
                                   abs=1e-3)
    with tarfile.open(out / "gpu-window.tar.gz") as archive:
        names = set(archive.getnames())
        log = archive.extractfile("train/run/train.log").read().decode()
    assert {"gpu-window.log", "train/run/train.log", "score-bsd68-s25/bsd68-s25.csv"} <= names
    assert "done: 2 iterations this session" in log and "held-out PSNR" in log
