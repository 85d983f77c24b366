"""Strongly typed TensorRT engine build from an exported ONNX graph (TensorRT 10.12+ and 11.x).

``tensorrt`` is imported only when a build is asked for, so everything else in ``export`` works on
machines without it. The network is created strongly typed: every tensor keeps the type the ONNX
graph gives it, so the FP16 engine is built from the FP16 ONNX (whose attention path is float32
through explicit Casts) and the float32 engine from the float32 ONNX. Precision lives in the
graph, where ``dagl-export`` checked it; there are no builder precision flags or per-layer pins
(TensorRT 11 removed that weak-typing API, and 10.12+ ignores it for strongly typed networks).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dagl.weights import file_digest

from .atomic import write_atomic
from .onnx import INPUT_NAME

TIMING_CACHE_NAME = "dagl-timing.cache"
WORKSPACE_BYTES = 4 << 30


class EngineUnavailable(RuntimeError):
    """No engine can be built on this machine (no tensorrt, no GPU); the ONNX files are still fine."""


class EngineBuildError(RuntimeError):
    """TensorRT refused the graph or the build failed; the message carries TensorRT's reason."""


@dataclass(frozen=True)
class Profile:
    """One optimisation profile, shapes as (N, C, H, W)."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]


@dataclass(frozen=True)
class GPU:
    name: str
    compute_capability: str


def import_tensorrt():
    """The ``tensorrt`` module, or :class:`EngineUnavailable` saying why not."""
    try:
        import tensorrt
    except ImportError as exc:
        raise EngineUnavailable(f"tensorrt is not installed ({exc}); pip install 'dagl[tensorrt]' "
                                "on a machine with an NVIDIA GPU") from None
    return tensorrt


def current_gpu() -> GPU:
    """Name and compute capability of CUDA device 0, from torch or else nvidia-smi."""
    import torch

    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        return GPU(torch.cuda.get_device_name(0), f"{major}.{minor}")
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader", "-i", "0"],
                                capture_output=True, text=True, check=False)
        if result.returncode == 0 and "," in result.stdout:
            name, capability = (part.strip() for part in result.stdout.splitlines()[0].rsplit(",", 1))
            return GPU(name, capability)
    raise EngineUnavailable("no CUDA GPU found (torch.cuda and nvidia-smi see none)")


def network_flags(trt) -> int:
    """Creation flags of a strongly typed network.

    TensorRT 10.12+ needs ``STRONGLY_TYPED`` to be strongly typed; 11.x always is and keeps the
    flag only for compatibility (it is ignored), so passing it is right for both.
    """
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def build_engine(onnx_path: Path, plan_path: Path, *, profile: Profile, sidecar: dict) -> Path:
    """Build ``plan_path`` from ``onnx_path`` and write ``<plan>.json`` beside it.

    ``onnx_path`` decides the precision (float32 or FP16 graph). ``sidecar`` carries the task facts
    (task, channels, precision, sigma); the build adds the TensorRT version, the GPU, the profile
    and the ONNX digest. The timing cache in the plan's folder is read before and written after,
    so rebuilding (e.g. fp32 after fp16) is fast. TF32 is cleared so that a float32 graph gets
    float32 math, as in ``polygraphy run`` without ``--tf32`` (the documented parity check).
    """
    trt = import_tensorrt()
    gpu = current_gpu()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    config.clear_flag(trt.BuilderFlag.TF32)
    shapes = builder.create_optimization_profile()
    shapes.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(shapes)
    cache_path = plan_path.parent / TIMING_CACHE_NAME
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path.name} (see its log above)")
    write_atomic(plan_path, bytes(serialized))
    write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    meta = sidecar | {
        "tensorrt_version": trt.__version__,
        "gpu_name": gpu.name,
        "compute_capability": gpu.compute_capability,
        "min_shape": list(profile.min),
        "opt_shape": list(profile.opt),
        "max_shape": list(profile.max),
        "onnx": onnx_path.name,
        "onnx_sha256": file_digest(onnx_path),
    }
    write_atomic(plan_path.with_name(plan_path.name + ".json"), (json.dumps(meta, indent=2) + "\n").encode())
    return plan_path
