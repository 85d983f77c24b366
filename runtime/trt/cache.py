"""The engine cache: an ONNX file run with ``--backend tensorrt`` finds its engine again instead of rebuilding it.

A TensorRT engine is valid for one graph, one profile, one TensorRT release and one GPU, and takes
minutes to build. So each engine is named by everything it depends on (as vs-mlrt names its
engines): task, sigma, precision, profile, TensorRT version, GPU and the ONNX file's SHA-256. A
name that exists was built from the same inputs and is reused; anything that changed gives a new
name, so a stale engine is never run and two machines can share one cache folder. One timing cache
per TensorRT version and GPU sits beside the engines and is reused by every build, which makes the
second precision or profile of a graph a fraction of the first build.

The folder is :func:`dagl.runtime.base.default_cache_dir` unless the caller names one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dagl.artefact import GPU, EngineSidecar, EngineUnavailable, Profile, SidecarError, current_gpu
from dagl.artefact.naming import artefact_stem
from dagl.files import file_digest

from ..base import CACHE_ENV, ModelInfo, RuntimeLoadError
from .loader import tensorrt_module


def _slug(text: str) -> str:
    """``text`` as a file-name part: letters, digits, dots and dashes; runs of anything else become ``_``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine built from an ONNX file depends on; equal keys mean the same engine."""

    task: str
    sigma: int | None
    precision: str
    profile: Profile
    tensorrt_version: str
    gpu: GPU
    onnx_sha256: str

    @property
    def file_name(self) -> str:
        """``<artefact stem>-<precision>_<min>_<opt>_<max>_trt<version>_<gpu>_sm<cc>_<sha>.plan``."""
        shapes = "_".join(_shape(s) for s in (self.profile.min, self.profile.opt, self.profile.max))
        return (f"{artefact_stem(self.task, self.sigma)}-{self.precision}_{shapes}_{self._target}_"
                f"{self.onnx_sha256[:16]}.plan")

    @property
    def timing_cache_name(self) -> str:
        """One timing cache per TensorRT version and GPU: tactic timings are valid for both, not beyond."""
        return f"timing_{self._target}.cache"

    @property
    def _target(self) -> str:
        """``trt<version>_<gpu>_sm<cc>``: what an engine and its tactic timings are valid for."""
        return f"trt{self.tensorrt_version}_{_slug(self.gpu.name)}_sm{self.gpu.compute_capability.replace('.', '')}"

    def matches(self, sidecar: EngineSidecar) -> bool:
        """Whether an engine's sidecar says it was built from exactly this key."""
        return (sidecar.task, sidecar.sigma, sidecar.precision, sidecar.profile, sidecar.tensorrt_version,
                sidecar.gpu_name, sidecar.compute_capability, sidecar.onnx_sha256) == \
            (self.task, self.sigma, self.precision, self.profile, self.tensorrt_version, self.gpu.name,
             self.gpu.compute_capability, self.onnx_sha256)


def engine_key(onnx: Path, info: ModelInfo, profile: Profile, tensorrt_version: str, gpu: GPU) -> EngineKey:
    """The key of the engine ``onnx`` builds into with ``profile`` on this TensorRT and GPU."""

    return EngineKey(info.task, info.sigma, info.precision, profile, tensorrt_version, gpu, file_digest(onnx))


def cached_engine(onnx: Path, info: ModelInfo, profile: Profile, cache_dir: Path) -> tuple[Path, EngineSidecar]:
    """(engine, sidecar) for ``onnx`` from ``cache_dir``: the one built before from the same key, else a new build.

    An engine whose sidecar is unreadable or names another key (a copied or half-replaced file) is
    rebuilt, never run.
    """
    from dagl.artefact.engine_build import EngineTask, build_engine  # torch and tensorrt: only when used

    trt = tensorrt_module()
    try:
        gpu = current_gpu()
    except EngineUnavailable as exc:
        raise RuntimeLoadError(f"building a TensorRT engine from {onnx.name} needs a CUDA GPU: {exc}") from None
    key = engine_key(onnx, info, profile, trt.__version__, gpu)
    plan = cache_dir / key.file_name
    if plan.is_file():
        try:
            sidecar = EngineSidecar.read(plan)
        except SidecarError:
            sidecar = None
        if sidecar is not None and key.matches(sidecar):
            return plan, sidecar
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeLoadError(f"cannot create the engine cache {cache_dir} ({exc.strerror}); set "
                               f"{CACHE_ENV} to a writable folder") from None
    weights = {"sha256": info.weights_sha256} if info.weights_sha256 else {}
    task = EngineTask(task=info.task, channels=info.channels, precision=info.precision, sigma=info.sigma,
                      weights=weights | {"onnx": onnx.name})
    sidecar = build_engine(onnx, plan, profile=profile, task=task, timing_cache=cache_dir / key.timing_cache_name)
    return plan, sidecar
