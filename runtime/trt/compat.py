"""Whether a serialized engine can run here: a pure comparison, testable without TensorRT or a GPU.

A TensorRT engine is compiled for one GPU architecture and one TensorRT release; deserialising it
elsewhere fails with an opaque error or, worse, works with wrong kernels. The sidecar written at
build time records both, so the mismatch can be named before TensorRT is even touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagl.artefact import SUPPORTED_TENSORRT


@dataclass(frozen=True)
class EngineTarget:
    """The TensorRT version and GPU an engine would run on (this process's, or a sidecar's)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str


def _release(version: str) -> tuple[str, ...]:
    # TensorRT documents engines as tied to the release that built them (major.minor.patch);
    # the fourth field is a build number (10.3.0.26) and does not matter.
    return tuple(version.split(".")[:3])


def engine_mismatch(built: EngineTarget, here: EngineTarget, rebuild_hint: str) -> str | None:
    """``None`` if an engine ``built`` for one target fits ``here``, else one line saying what differs.

    ``rebuild_hint`` is the command that rebuilds the engine for this machine, appended to the line;
    when the TensorRT releases differ, the line also says which releases dagl supports, so the
    user knows whether to rebuild here or to install another TensorRT.
    TensorRT documents a default engine as valid only on the device model that built it (unless
    built hardware-compatible, which ``dagl-export`` does not do), so the GPU name is compared as
    well as the compute capability, which alone decides whether the kernels load at all.
    """
    differences = []
    if _release(built.tensorrt_version) != _release(here.tensorrt_version):
        differences.append(f"TensorRT {built.tensorrt_version} (running {here.tensorrt_version})")
    if built.compute_capability != here.compute_capability:
        differences.append(f"compute capability {built.compute_capability} "
                           f"(this GPU has {here.compute_capability})")
    if built.gpu_name != here.gpu_name:
        differences.append(f"GPU {built.gpu_name!r} (this one is {here.gpu_name!r})")
    if not differences:
        return None
    supported = f"; dagl supports TensorRT {SUPPORTED_TENSORRT}" if _release(built.tensorrt_version) \
        != _release(here.tensorrt_version) else ""
    return f"engine was built for {' and '.join(differences)}{supported}; rebuild it here with: {rebuild_hint}"
