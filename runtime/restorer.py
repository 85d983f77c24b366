"""``Restorer``: numpy image in, restored numpy image out, over any backend and tiling policy.

This is the library face of ``dagl-infer`` (and what ``dagl-eval`` calls): it knows nothing about
files or channel conversions; it takes arrays already in the network's layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import BaseRunner
from .ensemble import ensemble as x8
from .loader import create_runner
from .tiling import (DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE, TILINGS, Progress, TilingError, count_tiles,
                     run_tiled)


class Restorer:
    """Restore float32 images in [0, 1], (H, W) or (H, W, C), with one artefact.

    >>> with Restorer("dagl-jpeg.onnx") as restore:
    ...     out = restore(image)

    Works without ``with`` too (the backend activates on first use; call :meth:`close`).
    ``threads`` (beyond the shared interface) caps CPU threads, for benchmarks on shared machines.
    """

    def __init__(self, model_path: str | Path, task: str | None = None, sigma: int | None = None,
                 backend: str = "auto", device: str = "cpu", tiling: str = "grid", tile: int | None = None,
                 overlap: int | None = None, batch: int | None = None, ensemble: bool = False,
                 threads: int | None = None) -> None:
        if tiling not in TILINGS:
            raise TilingError(f"unknown tiling {tiling!r}; choose one of: {', '.join(TILINGS)}")
        self.tiling = tiling
        self.tile = DEFAULT_TILE if tile is None else int(tile)
        self.overlap = DEFAULT_OVERLAP if overlap is None else int(overlap)
        self.batch = int(batch) if batch is not None else DEFAULT_BATCH
        if self.tile < 8 or not 0 <= self.overlap < self.tile or self.batch < 1:
            raise TilingError(f"need tile >= 8, 0 <= overlap < tile and batch >= 1; got tile={self.tile}, "
                             f"overlap={self.overlap}, batch={self.batch}")
        self.ensemble = ensemble
        self.runner: BaseRunner = create_runner(model_path, backend, device, task, sigma, threads)
        if batch is None and self.runner.max_batch:  # an engine built for fewer tiles per call
            self.batch = min(self.batch, self.runner.max_batch)
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
        self.runner.deactivate()

    def tiles_for(self, height: int, width: int) -> int:
        """Network tiles one (H, W) image takes (x8 runs each of them 8 times)."""
        return count_tiles(self.tiling, height, width, self.tile, self.overlap)

    def __call__(self, image: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Restore ``image``; ``progress(n)`` is called as tiles finish."""
        image = np.asarray(image, dtype=np.float32)
        gray_2d = image.ndim == 2
        chw = image[None] if gray_2d else np.moveaxis(image, -1, 0) if image.ndim == 3 else None
        if chw is None or chw.shape[0] != self.channels:
            raise ValueError(f"task {self.task!r} takes (H, W{', 1' if self.channels == 1 else ', 3'}) images "
                             f"with {self.channels} channel(s), got shape {image.shape}")
        self.runner.activate()
        infer = x8(self.runner.infer) if self.ensemble else self.runner.infer
        out = run_tiled(np.ascontiguousarray(chw), infer, self.tiling, self.tile, self.overlap, self.batch,
                        progress)
        out = np.clip(out, 0.0, 1.0).astype(np.float32)
        return out[0] if gray_2d else np.moveaxis(out, 0, -1)
