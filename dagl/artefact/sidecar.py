"""The JSON record written beside every engine: what it computes and where it can run.

An engine file says nothing readable about itself, and TensorRT ties it to the release and GPU that
built it. The sidecar carries the task facts (so a denoising engine is never run on JPEG input) and
the build target (so a foreign engine is refused with a rebuild command instead of an opaque error).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..errors import UserInputError
from ..files import loads_bounded, read_small
from .format import MetadataError, Profile, check_declared
from .naming import sidecar_path

#: A sidecar is a few hundred bytes; anything much larger is not one.
_MAX_BYTES = 1 << 20


class SidecarError(UserInputError):
    """An engine whose sidecar is missing or unreadable."""


@dataclass(frozen=True, kw_only=True)
class EngineTask:
    """What an engine computes, in the form ONNX metadata declares it: the build is handed these."""

    task: str
    channels: int
    precision: str
    sigma: int | None
    weights: dict[str, Any] = field(default_factory=dict)

    def declared(self) -> dict[str, object]:
        """The task facts, in the form ONNX metadata declares them (for one resolution rule)."""
        return {name: getattr(self, name) for name in _TASK_FIELDS}


_TASK_FIELDS = tuple(f.name for f in fields(EngineTask))


@dataclass(frozen=True, kw_only=True)
class EngineSidecar(EngineTask):
    """Everything a loader must know about an engine before handing it to TensorRT: its task facts
    (:class:`EngineTask`) and the build target."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    min_shape: tuple[int, int, int, int]
    opt_shape: tuple[int, int, int, int]
    max_shape: tuple[int, int, int, int]
    onnx_sha256: str = ""

    @property
    def profile(self) -> Profile:
        return Profile(self.min_shape, self.opt_shape, self.max_shape)

    @property
    def max_batch(self) -> int:
        return self.max_shape[0]

    def write(self, engine: Path) -> Path:
        record = asdict(self) | {name: list(getattr(self, name)) for name in ("min_shape", "opt_shape", "max_shape")}
        return write_atomic(sidecar_path(engine), json.dumps(record, indent=2) + "\n")

    @classmethod
    def read(cls, engine: Path) -> EngineSidecar:
        path = sidecar_path(engine)
        try:
            raw = loads_bounded(read_small(path, _MAX_BYTES, "an engine sidecar").decode("utf-8"))
        except FileNotFoundError:
            raise SidecarError(f"{engine}: its sidecar {path.name} is missing; the engine's task, TensorRT "
                               f"version and GPU are unknown (rebuild it with dagl-export)") from None
        except (OSError, ValueError) as exc:
            raise SidecarError(f"{path}: unreadable sidecar ({exc})") from None
        return cls._from_json(raw, path)

    @classmethod
    def _from_json(cls, raw: object, path: Path) -> EngineSidecar:
        if not isinstance(raw, dict):
            raise SidecarError(f"{path}: not an engine sidecar (expected a JSON object)")
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.name not in ("onnx_sha256", "weights")}
        missing = sorted(required - raw.keys())
        if missing:
            raise SidecarError(f"{path}: engine sidecar lacks {', '.join(missing)} (rebuild it with dagl-export)")
        values = {key: raw[key] for key in known if key in raw}
        try:
            for name in ("min_shape", "opt_shape", "max_shape"):
                shape = values[name]
                # integers only: int() of 1e400 (a float inf) overflows, of 2.7 truncates, of "1234" splits
                if (not isinstance(shape, list) or len(shape) != 4
                        or not all(type(v) is int and v >= 1 for v in shape)):
                    raise ValueError(f"{name} {str(shape)[:80]} is not four positive integer sizes")
                values[name] = tuple(shape)
            if not isinstance(values.get("weights", {}), dict):
                raise ValueError("weights is not an object")
            texts = ("task", "precision", "tensorrt_version", "gpu_name", "compute_capability", "onnx_sha256")
            values |= check_declared({name: values[name] for name in ("channels", "sigma", *texts) if name in values},
                                     path)
        except (TypeError, ValueError) as exc:
            raise SidecarError(f"{path}: malformed engine sidecar ({exc})") from None
        except MetadataError as exc:
            raise SidecarError(str(exc)) from None
        return cls(**values)
