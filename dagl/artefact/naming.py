"""Every name dagl gives an artefact: one stem per (task, sigma), the suffixes, and the untrained-weights label.

The exporter writes these names, the shipped-weights lookup, ``dagl-train``, ``dagl-eval paper`` and
the runtime loader look for them; when each spelled its own, a denoise export (``dagl-denoise.onnx``)
was not what the paper table looked for (``dagl-denoise-s25.onnx``). Torch-free, so ``--help`` and
metadata readers can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..tasks.configs import get_config
from .precision import FP32, GRAPH_PRECISIONS, get_graph_precision

PREFIX = "dagl"
#: Weights files: ``.safetensors`` is what dagl writes; the official checkpoints are ``.pt``/``.pth``.
WEIGHTS_SUFFIX = ".safetensors"
CHECKPOINT_SUFFIXES = (".pt", ".pth")
WEIGHTS_SUFFIXES = (*CHECKPOINT_SUFFIXES, WEIGHTS_SUFFIX)
ONNX_SUFFIX = ".onnx"
ONNX_SUFFIXES = (ONNX_SUFFIX,)
#: Engines: ``.plan`` is what dagl-export writes; ``.engine`` is read too (trtexec's habit).
ENGINE_SUFFIX = ".plan"
ENGINE_SUFFIXES = (ENGINE_SUFFIX, ".engine")
#: The JSON beside an engine (``x.plan.json``) and the export manifest (``dagl-<stem>.json``).
JSON_SUFFIX = ".json"
#: The TensorRT timing cache kept in an export folder (shared by every build there).
TIMING_CACHE_NAME = f"{PREFIX}-timing.cache"

#: ``dagl.weights`` metadata: the weights' SHA-256, or the untrained-weights label below.
WEIGHTS_KEY = "dagl.weights"
#: How every artefact labels untrained weights: ``dagl-export --weights random`` and a ``dagl-train``
#: run that ran no iteration alike, so each later command warns.
RANDOM_LABEL = "RANDOM"


def artefact_stem(task: str, sigma: int | None = None) -> str:
    """``dagl-<task>`` or ``dagl-<task>-s<sigma>``: the stem of every file of one model variant.

    The task's sigma rule is applied first (:meth:`~dagl.tasks.configs.TaskConfig.check_sigma`), so no name
    is made for a variant that does not exist: :class:`~dagl.tasks.configs.TaskError` says which do.
    """
    sigma = get_config(task).check_sigma(sigma)
    return f"{PREFIX}-{task}" + (f"-s{sigma}" if sigma is not None else "")


def weights_name(task: str, sigma: int | None = None) -> str:
    """``dagl-<task>[-s<sigma>].safetensors``: shipped weights and what ``dagl-train`` releases."""
    return artefact_stem(task, sigma) + WEIGHTS_SUFFIX


def onnx_name(task: str, sigma: int | None = None, precision_name: str = FP32.name) -> str:
    """``dagl-<stem>.onnx`` for the float32 graph, ``dagl-<stem>-fp16.onnx`` etc. for the others."""
    return artefact_stem(task, sigma) + get_graph_precision(precision_name).onnx_suffix + ONNX_SUFFIX


def engine_name(task: str, sigma: int | None = None, precision_name: str = FP32.name) -> str:
    """``dagl-<stem>-<precision>.plan``: the engine always says its precision, float32 included."""
    return f"{artefact_stem(task, sigma)}-{get_graph_precision(precision_name).name}{ENGINE_SUFFIX}"


def manifest_name(task: str, sigma: int | None = None) -> str:
    """``dagl-<stem>.json``: what one ``dagl-export`` run wrote, from which weights, with which tools."""
    return artefact_stem(task, sigma) + JSON_SUFFIX


def sidecar_path(engine: Path) -> Path:
    """``x.plan`` -> ``x.plan.json``."""
    return engine.with_name(engine.name + JSON_SUFFIX)


def lookup_names(task: str, sigma: int | None, suffix: str) -> tuple[str, ...]:
    """The file names a folder may hold one variant's ``suffix`` artefact under, in the order to try.

    ``dagl-<stem><suffix>`` (weights, the float32 graph, a renamed engine), and for the engine
    suffix also the engines ``dagl-export`` writes, float32 first (``dagl-<stem>-fp32.plan``, ...).
    """
    stem = artefact_stem(task, sigma)
    engines = tuple(engine_name(task, sigma, name) for name in GRAPH_PRECISIONS) if suffix == ENGINE_SUFFIX else ()
    return (stem + suffix, *engines)


def random_label(seed: int, why: str = "") -> str:
    """The ``dagl.weights`` text of seeded random (untrained) weights, e.g. ``RANDOM (seed 0), not trained``."""
    return f"{RANDOM_LABEL} (seed {seed}), not trained" + (f": {why}" if why else "")


def is_random_label(label: object) -> bool:
    """Whether a ``dagl.weights`` value (text, or a sidecar's weights record) says the weights are untrained."""
    if isinstance(label, Mapping):
        return bool(label.get("random"))
    return isinstance(label, str) and label.upper().startswith(RANDOM_LABEL)


def shown_random_label(label: object) -> str:
    """The untrained-weights label as a warning shows it: the text itself, or the generic one for a record."""
    return label if isinstance(label, str) else f"{RANDOM_LABEL}, not trained"
