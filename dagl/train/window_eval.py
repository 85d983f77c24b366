"""The checks a training window runs on the weights it made: paper protocol, GPU parity, timing.

* PSNR on Classic5 q10 and LIVE1 q10 with the paper's protocol (the stored MATLAB JPEGs, the
  release's reference chop, no x8 ensemble) through :class:`dagl.runtime.Restorer`, beside the
  JPEG input's PSNR and the paper's number (which used the ensemble);
* the GPU parity tests (``pytest -m gpu``, the PyTorch CUDA cases: the device has no
  onnxconverter-common and no TensorRT), run as a subprocess so a failure is a result;
* the time of one 512x512 image at FP32 and under FP16 autocast.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from ..datasets import DatasetError, centre_crop, named_set
from ..io import read_image
from ..runtime import Restorer
from ..runtime.evaluate.paper import PAPER_CELLS
from ..runtime.evaluate.scoring import evaluate

#: The CAR cells a window reports, as (test set, JPEG quality).
CAR_CELLS = (("classic5", 10), ("live1", 10))
#: PSNR of the stored JPEG inputs themselves (full images), the floor any restoration must beat.
JPEG_INPUT_PSNR = {("classic5", 10): 27.82, ("live1", 10): 27.77}
#: The parity tests the device can run (no onnxconverter-common, no TensorRT there).
PARITY_SELECTION = "torch_cuda"


def paper_psnr(dataset: str, quality: int) -> float:
    """The paper's Table 3 number (x8 self-ensemble), from the one place the targets are written."""
    return next(c.psnr for c in PAPER_CELLS if c.task == "jpeg" and c.dataset == dataset and c.quality == quality)


def car_protocol(weights: Path, data_root: Path, device: str, limit: int | None = None,
                 crop: int | None = None) -> list[dict]:
    """Mean PSNR/SSIM of ``weights`` on each :data:`CAR_CELLS` set, reference chop, no ensemble."""
    rows = []
    with Restorer(weights, task="jpeg", backend="torch", device=device, tiling="reference") as restorer:
        for dataset, quality in CAR_CELLS:
            try:
                evalset = named_set(dataset, quality=quality, limit=limit, crop=crop, root=data_root)
            except DatasetError as exc:
                rows.append({"dataset": dataset, "quality": quality, "error": str(exc)})
                continue
            result = evaluate([restorer], [weights.name], evalset)
            score, degraded = result.mean_scores()[0], result.mean_degraded()
            rows.append({"dataset": dataset, "quality": quality, "images": len(result.images),
                         "crop": crop, "psnr": score.psnr, "ssim": score.ssim, "input_psnr": degraded.psnr,
                         "input_psnr_full_images": JPEG_INPUT_PSNR[(dataset, quality)],
                         "paper_psnr_x8": paper_psnr(dataset, quality), "seconds": result.seconds[0]})
    return rows


def parity_tests(repo_root: Path, data_root: Path, require_gpu: bool, timeout: float) -> dict:
    """``pytest -m gpu`` on the PyTorch CUDA cases, with the window's copy of the test sets."""
    env = dict(os.environ, DAGL_DATASETS=str(data_root.resolve()), DAGL_REQUIRE_GPU="1" if require_gpu else "0")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-k", PARITY_SELECTION,
               "tests/test_gpu_parity.py"]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=timeout)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}\ntimed out after {timeout:.0f} s", -1
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error|errors)", output)}
    return {"command": " ".join(command[1:]), "returncode": code, "counts": counts,
            "seconds": time.monotonic() - started, "tail": output[-3000:]}


def timing_image(data_root: Path, size: int) -> np.ndarray:
    """A ``size`` x ``size`` crop of a stored LIVE1 q10 JPEG (reflect-padded if the image is smaller)."""
    image = read_image(data_root / "live1" / "jpeg_q10" / "bikes.jpeg")
    image = image[..., 0] if image.ndim == 3 else image
    pad = [(0, max(0, size - n)) for n in image.shape]
    return np.ascontiguousarray(centre_crop(np.pad(image, pad, mode="reflect"), size))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_image(weights: Path, image: np.ndarray, device: str, repeats: int, warmup: int = 1) -> dict:
    """Median seconds of one image through the reference chop, FP32 and under FP16 autocast."""
    out: dict[str, dict] = {}
    with Restorer(weights, task="jpeg", backend="torch", device=device, tiling="reference") as restorer:
        for precision in ("fp32", "fp16"):
            autocast = (torch.autocast(torch.device(device).type, dtype=torch.float16)
                        if precision == "fp16" else nullcontext())
            try:
                times = []
                with autocast:
                    for _ in range(warmup + repeats):  # warm-up runs pay for allocation and autotuning
                        _sync(device)
                        started = time.perf_counter()
                        restorer(image)
                        _sync(device)
                        times.append(time.perf_counter() - started)
                out[precision] = {"median_seconds": statistics.median(times[warmup:]), "runs": repeats}
            except RuntimeError as exc:  # e.g. FP16 kernels missing on this device
                out[precision] = {"error": str(exc).strip().splitlines()[0][:200]}
    return {"shape": list(image.shape), "device": device, "tiling": "reference", **out}
