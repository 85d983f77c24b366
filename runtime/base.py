"""The one runner interface every backend implements (Polygraphy-style: load, activate, infer, release).

A runner executes a batch of tiles and nothing else: tiling, ensembles and channel policy live
above it, so a backend is ~50 lines and every backend gets them for free.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dagl.artefact.precision import FP32
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
    #: The artefact's precision (``dagl.precision``); once a runner is made, the precision it runs at.
    precision: str = FP32.name
    #: The artefact declares seeded random, untrained weights (``dagl-export --weights random``): reports say so.
    random_weights: bool = False
    #: SHA-256 of the weights file it was made from (export metadata, engine sidecar, or the file itself).
    weights_sha256: str | None = None

    @property
    def weights_identity(self) -> str | None:
        """What two artefacts share when made from the same weights; ``None`` when nothing says."""
        return "random (seeded)" if self.random_weights else self.weights_sha256


#: Environment variable naming the folder of engines built on demand (point it at a persistent volume).
CACHE_ENV = "DAGL_ENGINE_CACHE"


def default_cache_dir() -> Path:
    """Where engines built on demand go: ``$DAGL_ENGINE_CACHE``, else ``$XDG_CACHE_HOME/dagl/engines``
    (``~/.cache/dagl/engines``): a per-user cache, because the artefact's own folder may be read-only."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dagl" / "engines"


@dataclass(frozen=True)
class RunnerRequest:
    """What a backend's factory is given: one artefact and the user's choices, all already checked.

    The factory (one per entry of :data:`dagl.runtime.backends.REGISTRY`) reads the artefact's
    metadata and returns a runner that is not yet activated: nothing heavy happens before
    :meth:`BaseRunner.activate`.
    """

    path: Path
    #: The artefact kind its file name says (``engine``, ``onnx`` or ``weights``; dagl.runtime.loader).
    kind: str
    #: Resolved by :func:`dagl.device.resolve_device`: ``cpu``, ``cuda`` or ``cuda:N``.
    device: str
    #: The user said ``auto``: a GPU library that is missing may fall back to the CPU (an explicit
    #: ``cuda`` may not).
    device_is_auto: bool = False
    task: str | None = None
    sigma: int | None = None
    threads: int | None = None
    #: Where engines built on demand are kept (the TensorRT backends; :func:`default_cache_dir` by default).
    engine_cache: Path = field(default_factory=default_cache_dir)


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
