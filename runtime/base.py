"""The one runner interface every backend implements (Polygraphy-style: load, activate, infer, release).

A runner executes a batch of tiles and nothing else: tiling, ensembles and channel policy live
above it, so a backend is ~50 lines and every backend gets them for free.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from dagl.errors import DaglError, UserInputError


class RuntimeLoadError(DaglError):
    """An artefact or backend that cannot be used; the message is one line meant for the user."""


class ModelInputError(UserInputError, RuntimeLoadError):
    """The model the user named is missing, of an unknown kind, or does not fit the options they gave (their fix)."""


class InferenceError(DaglError):
    """A network output that must not be used (wrong shape, NaN or Inf): the image fails, nothing is written."""


@dataclass(frozen=True)
class ModelInfo:
    """What an artefact says about the network inside it (from ONNX metadata or an engine sidecar)."""

    task: str
    channels: int
    sigma: int | None = None
    precision: str = "fp32"
    #: The artefact declares untrained (RANDOM) weights: commands warn and reports say so.
    random: bool = False


class BaseRunner:
    """Runs (N, C, h, w) float32 batches; a context manager so device resources have a clear lifetime.

    Subclasses implement :meth:`activate_impl`, :meth:`infer_impl` and :meth:`deactivate_impl`.
    Timing is kept here so all backends report it the same way (wall clock around ``infer_impl``,
    which includes host<->device copies: what a user of the runner actually waits for).
    """

    name = "base"

    def __init__(self, info: ModelInfo, device: str = "cpu") -> None:
        self.info = info
        self.device = device
        self.is_active = False
        self.last_inference_time = 0.0
        self.total_inference_time = 0.0
        self.inference_count = 0
        # Threads sharing one runner may all make the first call: exactly one builds the session.
        self._activation_lock = threading.Lock()

    @property
    def max_batch(self) -> int | None:
        """Most tiles one :meth:`infer` call takes (``None``: no limit but memory)."""
        return None

    def activate(self) -> BaseRunner:
        with self._activation_lock:
            if not self.is_active:
                self.activate_impl()
                self.is_active = True
        return self

    def deactivate(self) -> None:
        with self._activation_lock:
            if self.is_active:
                self.deactivate_impl()
                self.is_active = False

    def __enter__(self) -> BaseRunner:
        return self.activate()

    def __exit__(self, *exc_info: object) -> None:
        self.deactivate()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, h, w) float32 in [0, 1] -> the network's output, same shape, float32 (not clamped)."""
        if not self.is_active:
            raise RuntimeError(f"{self.name} runner used before activate()")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != self.info.channels:
            raise ValueError(f"expected a (N, {self.info.channels}, h, w) batch, got {batch.shape}")
        start = time.perf_counter()
        out = self.infer_impl(batch)
        self.last_inference_time = time.perf_counter() - start
        self.total_inference_time += self.last_inference_time
        self.inference_count += 1
        return check_output(out, batch.shape)

    def activate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        raise NotImplementedError


def check_output(out: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``out`` as float32 if it is a usable restoration of a batch of ``shape``, else :class:`InferenceError`.

    Checked on every batch: an artefact whose output is (N, C, 1, 1) would otherwise be broadcast
    into a flat image, and a NaN would be clamped into plausible-looking pixels.
    """
    out = np.asarray(out)
    if out.shape != tuple(shape):
        raise InferenceError(f"the model returned shape {out.shape} for a batch of shape {tuple(shape)}; "
                             f"a restoration network must return its input's shape")
    if not np.issubdtype(out.dtype, np.floating):
        raise InferenceError(f"the model returned {out.dtype} samples; expected float32")
    bad = out.size - int(np.isfinite(out).sum())
    if bad:
        raise InferenceError(f"the model produced {bad} NaN or infinite value(s) (broken weights, or FP16 "
                             f"overflow); nothing was written for this image")
    return out.astype(np.float32, copy=False)
