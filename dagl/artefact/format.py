"""Names and defaults shared by every artefact: ONNX I/O, ``dagl.*`` metadata, tiles and profiles."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UserInputError
from .precision import GRAPH_PRECISIONS

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


def onnx_metadata(task: str, channels: int, precision: str, sigma: int | None, weights: str) -> dict[str, str]:
    """The ``dagl.*`` metadata_props an exported graph carries (``weights``: digest or random label)."""
    props = {"task": task, "channels": str(channels), "precision": precision, "weights": weights}
    if sigma is not None:
        props["sigma"] = str(sigma)
    return {METADATA_PREFIX + key: value for key, value in props.items()}


class MetadataError(UserInputError):
    """A field a file declares about its network that is not of its type, range or length."""


#: The sigma range of every command's ``--sigma``; the channel counts an image can have (gray ..
#: RGBA); how long a declared text may be. The precisions are the entries of :mod:`.precision`.
SIGMA_RANGE = (1, 255)
CHANNEL_RANGE = (1, 4)
MAX_TEXT = 256
_DIGITS = re.compile(r"[0-9]{1,9}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}... ({len(text):,} characters)"


def _integer(value: object, low: int, high: int) -> int | None:
    """``value`` (an int, or its decimal text) if it lies in [low, high], else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = int(value) if _DIGITS.fullmatch(value) else None  # length-bounded: int() is cheap
    return value if isinstance(value, int) and low <= value <= high else None


def check_declared(declared: Mapping[str, object], source: object, prefix: str = "") -> dict[str, object]:
    """The one validator of what a file declares about its network: ONNX metadata_props, safetensors
    metadata and an engine sidecar's task facts all pass here before anything uses them.

    ``task`` and other texts are strings of at most :data:`MAX_TEXT` characters, ``precision`` one
    of :data:`GRAPH_PRECISIONS`, ``channels`` an integer in :data:`CHANNEL_RANGE`, ``sigma`` an integer
    in :data:`SIGMA_RANGE` or absent (``None``, ``""`` or ``"null"``). Returns the typed values; a
    bad field is one :class:`MetadataError` line naming ``source`` and the field (``prefix`` + name).
    """
    def refuse(name: str, value: object, expected: str) -> MetadataError:
        return MetadataError(f"{source}: field {prefix}{name} = {_shown(value)} is not {expected}; "
                             f"the file was not written by dagl or has been altered")

    checked: dict[str, object] = {}
    for name, value in declared.items():
        if name == "channels":
            checked[name] = _integer(value, *CHANNEL_RANGE)
            if checked[name] is None:
                raise refuse(name, value, "an integer from {} to {}".format(*CHANNEL_RANGE))
        elif name == "sigma":
            checked[name] = None if value in (None, "", "null") else _integer(value, *SIGMA_RANGE)
            if checked[name] is None and value not in (None, "", "null"):
                raise refuse(name, value, "an integer noise level from {} to {}".format(*SIGMA_RANGE))
        elif name == "precision":
            if not isinstance(value, str) or value not in GRAPH_PRECISIONS:
                raise refuse(name, value, f"one of {', '.join(GRAPH_PRECISIONS)}")
            checked[name] = value
        elif isinstance(value, Mapping) and name == "weights":  # a sidecar's weights record
            checked[name] = value
        elif not isinstance(value, str) or len(value) > MAX_TEXT:
            raise refuse(name, value, f"a text of at most {MAX_TEXT} characters")
        else:
            checked[name] = value
    return checked


def declared_metadata(props: Mapping[str, str], source: object = "metadata") -> dict[str, object]:
    """The ``dagl.*`` entries of ``props``, prefix removed and validated (:func:`check_declared`)."""
    declared = {key.removeprefix(METADATA_PREFIX): value for key, value in props.items()
                if key.startswith(METADATA_PREFIX)}
    return check_declared(declared, source, METADATA_PREFIX)
