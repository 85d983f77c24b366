"""Names and defaults shared by every artefact: ONNX I/O, ``dagl.*`` metadata, tiles and profiles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

INPUT_NAME = "input"
OUTPUT_NAME = "output"
#: ONNX ``metadata_props`` (and safetensors metadata) keys all start with this.
METADATA_PREFIX = "dagl."

#: Grid tiling defaults, chosen from the measured seam/speed trade-off (docs/tiling.md). An engine's
#: profile is tuned for the default tile and batch, so the two must move together: both live here.
DEFAULT_TILE = 80
DEFAULT_OVERLAP = 16
DEFAULT_BATCH = 4
#: Engine profile bounds (tile side): attention memory grows with (H*W)^2/16, so keep tiles modest.
DEFAULT_MIN_TILE = 16
DEFAULT_MAX_TILE = 256


@dataclass(frozen=True)
class Profile:
    """One TensorRT optimisation profile, shapes as (N, C, H, W)."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]


def artefact_stem(task: str) -> str:
    """``dagl-<task>``: the stem of every file ``dagl-export`` writes for ``task``."""
    return f"dagl-{task}"


def onnx_metadata(task: str, channels: int, precision: str, sigma: int | None, weights: str) -> dict[str, str]:
    """The ``dagl.*`` metadata_props an exported graph carries (``weights``: digest or random label)."""
    props = {"task": task, "channels": str(channels), "precision": precision, "weights": weights}
    if sigma is not None:
        props["sigma"] = str(sigma)
    return {METADATA_PREFIX + key: value for key, value in props.items()}


def declared_metadata(props: Mapping[str, str]) -> dict[str, str]:
    """The ``dagl.*`` entries of ``props``, prefix removed (what :func:`onnx_metadata` wrote)."""
    return {key.removeprefix(METADATA_PREFIX): value for key, value in props.items()
            if key.startswith(METADATA_PREFIX)}
