"""Strongly typed TensorRT engine build from an exported ONNX graph (TensorRT 10.12+ and 11.x).

Shared by ``dagl-export`` and the runtime's engine cache, which may not import each other, so it
sits in the artefact layer below both. ``tensorrt`` is imported only when a build is asked for, so
everything else works on machines without it. The network is created strongly typed: every tensor keeps the type the ONNX
graph gives it, so the FP16 engine is built from the FP16 ONNX (whose attention path is float32
through explicit Casts) and the float32 engine from the float32 ONNX. Precision lives in the
graph, where ``dagl-export`` checked it; there are no builder precision flags or per-layer pins
(TensorRT 11 removed that weak-typing API, and 10.12+ ignores it for strongly typed networks).
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import write_atomic
from ..errors import DaglError
from ..files import file_digest
from .format import DEFAULT_BATCH, DEFAULT_MAX_TILE, DEFAULT_MIN_TILE, DEFAULT_TILE, INPUT_NAME, Profile
from .probe import current_gpu, import_tensorrt
from .naming import TIMING_CACHE_NAME
from .sidecar import EngineSidecar, EngineTask

WORKSPACE_BYTES = 4 << 30


class EngineBuildError(DaglError):
    """TensorRT refused the graph or the build failed; the message carries TensorRT's reason."""


def network_flags(trt) -> int:
    """Creation flags of a strongly typed network.

    TensorRT 10.12+ needs ``STRONGLY_TYPED`` to be strongly typed; 11.x always is and keeps the
    flag only for compatibility (it is ignored), so passing it is right for both.
    """
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def default_profile(channels: int) -> Profile:
    """The profile ``dagl-export`` builds with when given no shapes: tiles of 16 to 256 px, tuned for the
    default tile, up to the default batch (so an engine built on demand takes what dagl-infer sends)."""
    return Profile(min=(1, channels, DEFAULT_MIN_TILE, DEFAULT_MIN_TILE),
                   opt=(DEFAULT_BATCH, channels, DEFAULT_TILE, DEFAULT_TILE),
                   max=(DEFAULT_BATCH, channels, DEFAULT_MAX_TILE, DEFAULT_MAX_TILE))


def build_engine(onnx_path: Path, plan_path: Path, *, profile: Profile, task: EngineTask,
                 timing_cache: Path | None = None) -> EngineSidecar:
    """Build ``plan_path`` from ``onnx_path`` and write ``<plan>.json`` beside it.

    ``onnx_path`` decides the precision (the float32 or the FP16 graph). ``task`` carries the task
    facts (task, channels, precision, sigma); the build adds the TensorRT version, the GPU, the
    profile and the ONNX digest. The timing cache (``timing_cache``, by default
    :data:`TIMING_CACHE_NAME` in the plan's folder) is read before and written after, so rebuilding
    (e.g. fp32 after fp16) is fast. TF32 is cleared so that a float32 graph
    gets float32 math, as ``polygraphy run`` does without ``--tf32`` (the documented parity check).
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
    cache_path = timing_cache or plan_path.parent / TIMING_CACHE_NAME
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path.name} (see its log above)")
    write_atomic(plan_path, bytes(serialized))
    write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    sidecar = EngineSidecar(**task.declared(), tensorrt_version=trt.__version__, gpu_name=gpu.name,
                            compute_capability=gpu.compute_capability, min_shape=profile.min,
                            opt_shape=profile.opt, max_shape=profile.max, onnx_sha256=file_digest(onnx_path))
    sidecar.write(plan_path)
    return sidecar
