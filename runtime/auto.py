"""What ``dagl-infer --backend auto`` runs a weights file on: the fastest path this machine has that stays within
0.05 dB of float32 on Classic5 q10.

Measured (docs/bench-cpu.md, ``dagl-bench jpeg --cpu-paths``): on a CPU, OpenVINO computing the float32 network in
bfloat16 is the fastest such path (Classic5 q10 29.377 dB against float32's 29.376). INT8 is not taken: the graph
that stays within 0.05 dB keeps GFAM's heads float, and they are 96 % of the time, so it is no faster than
bfloat16 (docs/int8.md); it also needs held-out training images to calibrate, which a user does not have. It needs
OpenVINO and a CPU with bfloat16 arithmetic (AVX512-BF16 or AMX, which OpenVINO's CPU
plugin reports as ``BF16``); without either, and on a GPU, weights run on PyTorch in float32 as before. Only
``dagl-infer``, ``dagl-serve`` and a program calling :func:`open_restorer` ask: ``dagl-eval``, ``dagl-bench`` and
``Restorer`` itself keep PyTorch float32 for weights (the float32 base of parity verdicts), and an explicit
``--backend`` or ``--precision`` is taken as given.

:func:`choose_auto` is the rule, a pure function of the artefact's kind, the resolved device and the
machine's capabilities (:func:`cpu_capabilities` probes them, only when the rule needs them);
:func:`open_restorer` applies it for a program as for ``dagl-infer``: an activated :class:`Restorer` on that
path, falling back to the artefact kind's own backend where the fast one cannot load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagl.artefact.precision import BF16, FP32
from dagl.device import is_cuda, resolve_device

from .backends import auto_backend
from .base import ModelInputError, RuntimeLoadError
from .loader import choose_model
from .restorer import Restorer

#: The quality cost, on Classic5 q10 against float32, a path ``auto`` takes may have.
MAX_LOSS_DB = 0.05
#: What to say about a path auto did not take because OpenVINO is missing.
OPENVINO_INSTALL = "pip install 'dagl[openvino]'"


@dataclass(frozen=True)
class Capabilities:
    """What the machine offers the fast CPU path."""

    #: OpenVINO imports.
    openvino: bool
    #: OpenVINO's CPU plugin computes in bfloat16 here (``BF16`` in its ``OPTIMIZATION_CAPABILITIES``).
    bf16: bool


@dataclass(frozen=True)
class AutoChoice:
    """A backend and precision (``None``: the artefact's own), and the one line that says why (``None``: none)."""

    backend: str
    precision: str | None
    line: str | None = None


def choose_auto(kind: str, device: str, capabilities: Callable[[], Capabilities]) -> AutoChoice:
    """``--backend auto`` for an artefact of ``kind`` on the resolved ``device`` (``cpu``, ``cuda[:N]``).

    Engines and ONNX files keep their kind's backend (:func:`~dagl.runtime.backends.auto_backend`), silently.
    Weights on a CPU run on OpenVINO in bfloat16 where ``capabilities()`` (called only here) has both,
    else on PyTorch in float32; each says so in one line.
    """
    default = auto_backend(kind).name
    if kind != "weights":
        return AutoChoice(default, None)
    fallback = f"backend: {default} {FP32.name} (auto: "
    if is_cuda(device):
        return AutoChoice(default, None, fallback + f"PyTorch float32 on {device})")
    have = capabilities()
    if not have.openvino:
        return AutoChoice(default, None, fallback + f"OpenVINO is not installed; {OPENVINO_INSTALL} for its "
                                                    f"bfloat16 path, faster within {MAX_LOSS_DB} dB of float32)")
    if not have.bf16:
        return AutoChoice(default, None, fallback + "this CPU has no bfloat16 arithmetic (AVX512-BF16 or AMX) "
                                                    "for OpenVINO's bfloat16 path)")
    return AutoChoice("openvino", BF16.name,
                      f"backend: openvino {BF16.name} (auto: the fastest CPU path within {MAX_LOSS_DB} dB of "
                      f"float32; --backend {default} for PyTorch float32)")


def cpu_capabilities() -> Capabilities:
    """This machine's: whether OpenVINO imports, and whether its CPU plugin computes in bfloat16."""
    try:
        import openvino as ov
    except ImportError:
        return Capabilities(openvino=False, bf16=False)
    try:
        offered = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # no CPU plugin to ask: OpenVINO cannot run here either
        return Capabilities(openvino=False, bf16=False)
    return Capabilities(openvino=True, bf16="BF16" in offered)


def open_restorer(model: str | Path, *, backend: str = "auto", precision: str | None = None, device: str = "cpu",
                  task: str | None = None, sigma: int | None = None, check: Callable[[Restorer], None] | None = None,
                  note: Callable[[str], None] | None = None, **options: Any) -> tuple[Restorer, str | None]:
    """An activated :class:`Restorer` for ``model`` on the path ``--backend auto`` takes, and the line that says
    which path and why (``None``: nothing to say).

    ``backend="auto"`` without a ``precision`` applies :func:`choose_auto`; anything else is taken as given. A
    fast path that fails to load (OpenVINO cannot convert or compile the network here) falls back to the
    artefact kind's own backend in float32 after ``note`` is told why; a model the user must fix, or a failure
    of what was asked for explicitly, raises. ``check`` sees each Restorer before it activates (the task of an
    artefact is known only then). ``options`` are :class:`Restorer`'s (tiling, tile, threads, ...).
    """
    choice = choose_model(model, backend, task, sigma)
    picked = AutoChoice(backend, precision)
    if backend == "auto" and precision is None:
        picked = choose_auto(choice.kind, resolve_device(device), cpu_capabilities)

    def make(backend: str, precision: str | None) -> Restorer:
        made = Restorer(model, task=task, sigma=sigma, backend=backend, device=device, precision=precision,
                        **options)
        if check is not None:
            check(made)
        made.runner.activate()
        return made

    try:
        return make(picked.backend, picked.precision), picked.line
    except RuntimeLoadError as exc:
        if picked.backend == backend or isinstance(exc, ModelInputError):  # asked for, or the user's to fix
            raise
        if note is not None:
            note(f"{exc}; running it on {choice.backend.name} float32 instead")
        return make(choice.backend.name, None), None
