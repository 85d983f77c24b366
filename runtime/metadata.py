"""What an artefact declares about its network, merged with what the user passed.

ONNX files carry ``dagl.*`` metadata_props and engines a JSON sidecar (``docs`` of interfaces);
a user may also name the task. The two must agree: running a denoising engine on a JPEG input
"works" and silently produces garbage, so a conflict is refused instead of resolved.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

from dagl import get_config
from dagl.artefact.naming import is_random_label, shown_random_label
from dagl.artefact.precision import FP32

from .base import ModelInfo, ModelInputError

log = logging.getLogger(__name__)


def resolve_info(declared: Mapping[str, object], path: Path, task: str | None = None,
                 sigma: int | None = None) -> ModelInfo:
    """Combine an artefact's declared ``task``/``channels``/``sigma``/``precision`` with user overrides.

    ``declared`` has passed :func:`dagl.artefact.check_declared` (typed, in range). Untrained weights
    are warned about here, once per load, for every kind of artefact."""
    declared_task = declared.get("task") or None
    if task and declared_task and task != declared_task:
        raise ModelInputError(f"{path.name} was exported for task {declared_task!r}, not {task!r}")
    task = task or declared_task  # type: ignore[assignment]
    if not task:
        raise ModelInputError(f"{path.name} does not say which task it is for; pass --task")
    config = get_config(str(task))  # an unknown name is the user's TaskError
    channels = declared.get("channels") or config.channels
    if channels != config.channels:
        raise ModelInputError(f"{path.name} takes {channels} channels but task {task!r} needs {config.channels}")
    declared_sigma = declared.get("sigma")
    if sigma is not None and declared_sigma is not None and sigma != declared_sigma:
        raise ModelInputError(f"{path.name} was exported for sigma {declared_sigma}, not {sigma}")
    return ModelInfo(task=str(task), channels=channels, sigma=sigma if sigma is not None else declared_sigma,
                     precision=str(declared.get("precision") or FP32.name), random_weights=warn_if_random(declared, path),
                     weights_sha256=declared_sha256(declared.get("weights")))


def declared_sha256(weights: object) -> str | None:
    """The weights digest an artefact's metadata records: ``dagl.weights`` (a hex string) or a sidecar's dict."""
    if isinstance(weights, Mapping):
        weights = weights.get("sha256")
    if isinstance(weights, str) and re.fullmatch(r"[0-9a-f]{64}", weights):
        return weights
    return None


def warn_if_random(declared: Mapping[str, object], path: Path) -> bool:
    """Warn (once per load) when an artefact declares untrained weights; returns whether it did.

    ``dagl-export --weights random`` exists to smoke-test a deployment pipeline, and a dagl-train run
    that ran no iteration ships its random initialisation; their outputs look like images but mean
    nothing, so whoever runs one is told on every load.
    """
    weights = declared.get("weights")
    random = is_random_label(weights)
    if random:
        log.warning("%s holds RANDOM, untrained weights (%s): its outputs are meaningless; use it for "
                    "pipeline smoke tests only", path.name, shown_random_label(weights))
    return random
