"""How every artefact labels untrained weights, without torch (commands' --help and metadata readers use it)."""

from __future__ import annotations

from collections.abc import Mapping

#: How every artefact labels untrained weights (``dagl.weights`` metadata): ``dagl-export --weights
#: random`` and a ``dagl-train`` run that ran no iteration alike, so each later command warns.
RANDOM_LABEL = "RANDOM"
WEIGHTS_KEY = "dagl.weights"


def random_label(seed: int, why: str = "") -> str:
    """The ``dagl.weights`` text of seeded random (untrained) weights, e.g. ``RANDOM (seed 0), not trained``."""
    return f"{RANDOM_LABEL} (seed {seed}), not trained" + (f": {why}" if why else "")


def is_random_label(label: object) -> bool:
    """Whether a ``dagl.weights`` value (text, or a sidecar's record) says the weights are untrained."""
    if isinstance(label, Mapping):
        return bool(label.get("random"))
    return isinstance(label, str) and label.upper().startswith(RANDOM_LABEL)
