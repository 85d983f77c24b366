"""TensorRT 10 engine build from the exported ONNX, with the FP16 policy applied per layer.

``tensorrt`` is imported only when a build is asked for, so everything else in ``export`` works on
machines without it. The engine is built from the float32 ONNX: TensorRT picks FP16 kernels
itself under ``BuilderFlag.FP16``, and the layers that the calibration policy keeps in float32 are
pinned there with ``layer.precision`` + ``OBEY_PRECISION_CONSTRAINTS`` (without that flag the
constraints are only hints, and the overflow they prevent would come back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dagl.artefact import INPUT_NAME, EngineSidecar, Profile, current_gpu, import_tensorrt
from dagl.atomic import write_atomic
from dagl.errors import DaglError
from dagl.weights import file_digest

TIMING_CACHE_NAME = "dagl-timing.cache"
WORKSPACE_BYTES = 4 << 30
#: The parser tags each network layer with the ONNX node(s) it came from.
_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]+)\]")


class EngineBuildError(DaglError):
    """TensorRT refused the graph or the build failed; the message carries TensorRT's reason."""


def pin_fp32_layers(trt, network, fp32_nodes: set[str]) -> int:
    """Force float32 math and outputs on every layer that came from a node in ``fp32_nodes``."""
    floats = (trt.float32, trt.float16)
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        sources = set(_ONNX_LAYER.findall(getattr(layer, "metadata", "") or "")) or {layer.name}
        if not sources & fp32_nodes:
            continue
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        if layer.type == trt.LayerType.CONSTANT or not all(out.dtype in floats for out in outputs):
            continue  # weights, shape arithmetic and the mask comparison have no float math to pin
        layer.precision = trt.float32
        for i in range(layer.num_outputs):
            layer.set_output_type(i, trt.float32)
        pinned += 1
    return pinned


@dataclass(frozen=True)
class EngineTask:
    """The task facts an engine's sidecar records (the build adds where it was built)."""

    task: str
    channels: int
    precision: str
    sigma: int | None
    weights: dict


def build_engine(onnx_path: Path, plan_path: Path, *, profile: Profile, fp16: bool, fp32_nodes: set[str],
                 task: EngineTask) -> EngineSidecar:
    """Build ``plan_path`` from ``onnx_path`` and write ``<plan>.json`` beside it.

    ``task`` carries the task facts (task, channels, precision, sigma); the build adds the
    TensorRT version, the GPU, the profile and the ONNX digest. The timing cache in the plan's
    folder is read before and written after, so rebuilding (e.g. fp32 after fp16) is fast.
    """
    trt = import_tensorrt()
    gpu = current_gpu()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10 networks are always explicit-batch (the creation flag is deprecated), so 0 flags.
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    shapes = builder.create_optimization_profile()
    shapes.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(shapes)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pin_fp32_layers(trt, network, fp32_nodes)
    cache_path = plan_path.parent / TIMING_CACHE_NAME
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path.name} (see its log above)")
    write_atomic(plan_path, bytes(serialized))
    write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    sidecar = EngineSidecar(task=task.task, channels=task.channels, precision=task.precision, sigma=task.sigma,
                            tensorrt_version=trt.__version__, gpu_name=gpu.name,
                            compute_capability=gpu.compute_capability, min_shape=profile.min,
                            opt_shape=profile.opt, max_shape=profile.max, onnx_sha256=file_digest(onnx_path),
                            weights=task.weights)
    sidecar.write(plan_path)
    return sidecar
