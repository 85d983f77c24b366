"""``Restorer``: numpy image in, restored numpy image out, over any backend and tiling policy.

This is the library face of ``dagl-infer`` (and what ``dagl-eval`` calls): it knows nothing about
files or channel conversions; it takes arrays already in the network's layout.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from dagl.artefact import DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE
from dagl.errors import DaglError, UserInputError
from dagl.memory import check_memory

from .base import BaseRunner
from .ensemble import TRANSFORMS
from .ensemble import ensemble as x8
from .loader import create_runner
from .tiling import Progress, TileOptions, TilingPolicy, get_tiling

#: How far outside [0, 1] an input may reach. The protocol's noisy inputs are not clipped: at sigma
#: 50 a white pixel passes 2.0 once in ~6 million draws, which Urban100 alone exceeds, and dagl-eval
#: accepts sigma up to 255. A margin of 4 admits sigma 150 at 5 sigma while 0-255 data (a mid-gray
#: pixel is 128) is still refused.
INPUT_MARGIN = 4.0
#: Smallest side restored: reflection padding up to a tile needs a few pixels, and below 8 px (two
#: 4x4 GFAM query cells) there is nothing to attend to. Checked here, so the library and every
#: command refuse the same (a (0, 0) array too) before any inference.
MIN_SIDE = 8


class InputArrayError(UserInputError, ValueError):
    """An array that is not an image in the network's layout and range; one line for the user."""


class RestorerClosedError(DaglError):
    """:meth:`Restorer.close` called while a call was still running on another thread."""


def check_input(image: np.ndarray, channels: int, task: str) -> np.ndarray:
    """``image`` as float32 if it is a finite (H, W[, C]) float image in about [0, 1], else one line why."""
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise InputArrayError(f"got a {image.dtype} array; pass float samples in [0, 1] "
                              f"(e.g. image.astype(np.float32) / 255 for 8-bit data)")
    gray_2d = image.ndim == 2
    if not (gray_2d or image.ndim == 3) or (1 if gray_2d else image.shape[-1]) != channels:
        raise InputArrayError(f"task {task!r} takes (H, W{', 1' if channels == 1 else ', 3'}) images "
                              f"with {channels} channel(s), got shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise InputArrayError(f"is {image.shape[1]}x{image.shape[0]} px; images need at least {MIN_SIDE} px "
                              f"on each side")
    bad = image.size - int(np.isfinite(image).sum())
    if bad:
        raise InputArrayError(f"the image holds {bad} NaN or infinite sample(s)")
    low, high = float(image.min()), float(image.max())
    if low < -INPUT_MARGIN or high > 1 + INPUT_MARGIN:
        raise InputArrayError(f"samples range over [{low:g}, {high:g}]; pass floats in [0, 1] "
                              f"(8-bit data: divide by 255)")
    return image.astype(np.float32, copy=False)


class Restorer:
    """Restore float32 images in [0, 1], (H, W) or (H, W, C), with one artefact.

    >>> with Restorer("dagl-jpeg.onnx") as restore:
    ...     out = restore(image)

    Works without ``with`` too (the backend activates on first use; call :meth:`close`).
    ``threads`` (beyond the shared interface) caps CPU threads, for benchmarks on shared machines.
    ``precision`` is the one to compute at (``None``: the artefact's own; ``bf16`` runs a float32 graph in
    bfloat16 on ``backend="openvino"``: see :func:`~dagl.runtime.loader.create_runner`).
    ``memory_budget`` (bytes) bounds the estimated peak of one batch of tiles (default: see
    :func:`~dagl.memory.memory_budget`); settings over it are refused before anything loads.
    """

    def __init__(self, model_path: str | Path, task: str | None = None, sigma: int | None = None,
                 backend: str = "auto", device: str = "cpu", tiling: str = "grid", tile: int | None = None,
                 overlap: int | None = None, batch: int | None = None, ensemble: bool = False,
                 threads: int | None = None, memory_budget: int | None = None, precision: str | None = None) -> None:
        self.policy: TilingPolicy = get_tiling(tiling)
        self.tiling = tiling
        #: The tiling settings in force (``batch`` may shrink to what an engine takes, below).
        self.options = TileOptions(DEFAULT_TILE if tile is None else int(tile),
                                   DEFAULT_OVERLAP if overlap is None else int(overlap),
                                   DEFAULT_BATCH if batch is None else int(batch))
        self.memory_budget = memory_budget
        # What the smallest image needs: all a grid or chop run needs (their tiles do not grow with
        # the image), so over-budget settings are refused before anything loads; calls check their image.
        self._check_memory(MIN_SIDE, MIN_SIDE)
        self.ensemble = ensemble
        self._calls = 0
        self._calls_lock = threading.Lock()
        self.runner: BaseRunner = create_runner(model_path, backend, device, task, sigma, threads, precision=precision)
        if batch is None and self.runner.max_batch:  # an engine built for fewer tiles per call
            self.options = replace(self.options, batch=min(self.options.batch, self.runner.max_batch))
        self.task = self.runner.info.task
        self.channels = self.runner.info.channels
        self.sigma = self.runner.info.sigma
        self.backend = self.runner.name

    def __enter__(self) -> Restorer:
        self.runner.activate()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the backend; refused while another thread is inside :meth:`__call__`."""
        with self._calls_lock:
            if self._calls:
                raise RestorerClosedError(f"close() called while {self._calls} restoration(s) are running; "
                                          f"close the Restorer after they return")
            self.runner.deactivate()

    def _check_memory(self, height: int, width: int) -> None:
        """Refuse the policy's largest call on an (H, W) image if its estimated peak exceeds the budget."""
        peak = self.policy.peak_tile(height, width, self.options)
        check_memory(peak.height, peak.width, peak.batch, self.memory_budget, what=peak.what)

    def tiles_for(self, height: int, width: int) -> int:
        """Network tile passes one (H, W) image takes: its tiles, 8 times each with the x8 ensemble."""
        return self.policy.count_tiles(height, width, self.options) * (len(TRANSFORMS) if self.ensemble else 1)

    def __call__(self, image: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Restore ``image``; ``progress(n)`` is called as tile passes finish (:meth:`tiles_for` in all)."""
        image = check_input(image, self.channels, self.task)
        gray_2d = image.ndim == 2
        chw = image[None] if gray_2d else np.moveaxis(image, -1, 0)
        self._check_memory(*chw.shape[1:])
        with self._calls_lock:
            self._calls += 1
        try:
            self.runner.activate()
            if self.ensemble:  # the ensemble reports each of its 8 passes; the tiling then reports nothing
                infer, tiled_progress = x8(self.runner.infer, progress), None
            else:
                infer, tiled_progress = self.runner.infer, progress
            out = self.policy.run(np.ascontiguousarray(chw), infer, self.options, tiled_progress)
        finally:
            with self._calls_lock:
                self._calls -= 1
        out = np.clip(out, 0.0, 1.0).astype(np.float32)
        return out[0] if gray_2d else np.moveaxis(out, 0, -1)
