"""Throughput probe: the fastest correct training set-up on this machine, in a few seconds each.

Candidates differ in mixed precision (bf16 autocast or none), memory format (channels_last or
not), GFAM implementation (:data:`dagl.gfam.GFAM_IMPLEMENTATIONS`) and ``torch.compile``. Each
starts from the same weights on the same batch; it is *correct* if its first loss is finite and
within a tolerance of the float32 reference's loss (bf16 and TF32 round, so the tolerance is
relative and loose enough for them, tight enough to catch a wrong kernel or a broken layout), and
if its loss stays finite while timed. The fastest correct candidate wins; the reference always
qualifies, so a probe that finds nothing better falls back to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from ..gfam import GFAM_IMPLEMENTATIONS
from .trainer import build_network, l2_gradients

#: Relative difference of the first loss from the float32 reference's allowed per precision.
LOSS_TOLERANCE = {"off": 2e-2, "bf16": 5e-2}
#: Steps excluded from the timing (allocation, cuDNN autotuning, compilation).
WARMUP_STEPS = 2
#: Seconds each eager candidate is timed for (after its warm-up).
EAGER_SECONDS = 2.0
#: A compiled candidate is only started with at least this much of the probe left. Compilation
#: cannot be interrupted: a slow one overruns the probe (the time comes out of training).
COMPILE_MIN_SECONDS = 20.0


@dataclass(frozen=True)
class SetUp:
    """One way of running the training step; the fields are dagl-train's options."""

    amp: str = "off"
    channels_last: bool = False
    gfam: str = "batched"
    compile: bool = False

    @property
    def label(self) -> str:
        return (f"amp {self.amp}, {'channels_last' if self.channels_last else 'contiguous'}, gfam {self.gfam}"
                f"{', compiled' if self.compile else ''}")


@dataclass
class ProbeResult:
    setup: SetUp
    ok: bool
    its: float | None = None  # iterations per second, timed after warm-up
    loss: float | None = None  # first loss, before any update
    reference_loss: float | None = None
    steps: int = 0
    seconds: float = 0.0  # wall time this candidate took, set-up included
    note: str = ""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["setup"] = asdict(self.setup) | {"label": self.setup.label}
        return out


def candidates(device: torch.device, tiny: bool = False) -> list[SetUp]:
    """Reference first, then the eager variants; compiled ones are added by :func:`probe`."""
    if tiny or device.type != "cuda":
        return [SetUp(), *(SetUp(gfam=g) for g in GFAM_IMPLEMENTATIONS if g != "batched")]
    amps = ["off", "bf16"] if torch.cuda.is_bf16_supported() else ["off"]
    out = [SetUp()]
    for gfam in GFAM_IMPLEMENTATIONS:
        for amp in amps:
            for channels_last in (False, True):
                setup = SetUp(amp, channels_last, gfam)
                if setup not in out:
                    out.append(setup)
    # The plain GFAM loops over the batch; try it last, it is there for completeness.
    return sorted(out, key=lambda s: (s.gfam != "batched", s != SetUp()))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(setup: SetUp, task: str, state: dict[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor],
            device: torch.device, seconds: float, reference_loss: float | None, min_steps: int = 3,
            warmup: int = WARMUP_STEPS) -> ProbeResult:
    """Build ``setup`` from ``state``, check its first loss, then time steps for about ``seconds``."""
    started = time.monotonic()
    result = ProbeResult(setup, ok=False, reference_loss=reference_loss)
    try:
        model = build_network(task, setup.gfam, device, setup.channels_last)
        model.load_state_dict(state)
        net = torch.compile(model) if setup.compile else model
        memory_format = torch.channels_last if setup.channels_last else torch.contiguous_format
        degraded, clean = (t.to(device, memory_format=memory_format) for t in batch)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        first_start = time.monotonic()
        losses = [l2_gradients(net, optimizer, degraded, clean, setup.amp)]
        optimizer.step()
        _sync(device)
        first_seconds = time.monotonic() - first_start
        result.loss = losses[0]
        reference = losses[0] if reference_loss is None else reference_loss
        result.reference_loss = reference
        relative = abs(losses[0] - reference) / max(abs(reference), 1e-12)
        if not torch.isfinite(torch.tensor(losses[0])) or relative > LOSS_TOLERANCE[setup.amp]:
            result.note = f"first loss {losses[0]:.6g} is {relative:.2%} off the reference {reference:.6g}"
            return result
        for _ in range(warmup - 1):  # the checked step above was the first warm-up step (if any)
            losses.append(l2_gradients(net, optimizer, degraded, clean, setup.amp))
            optimizer.step()
        _sync(device)
        timed_start, steps = time.monotonic(), 0
        while steps < min_steps or time.monotonic() - timed_start < seconds:
            losses.append(l2_gradients(net, optimizer, degraded, clean, setup.amp))
            optimizer.step()
            steps += 1
        _sync(device)
        elapsed = time.monotonic() - timed_start
        if warmup == 0:  # no warm-up asked for (toy sizes): the checked step is timed too
            steps, elapsed = steps + 1, elapsed + first_seconds
        result.steps = steps
        if not all(torch.isfinite(torch.tensor(losses))):
            result.note = "loss became non-finite while timed"
            return result
        result.its = steps / elapsed
        result.ok = True
    except Exception as exc:  # a set-up this machine cannot run is a result, not a crash
        result.note = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
    finally:
        result.seconds = time.monotonic() - started
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def probe(task: str, state: dict[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor],
          device: torch.device, budget_seconds: float, tiny: bool = False,
          log: Callable[[str], None] = print) -> tuple[SetUp, list[ProbeResult]]:
    """Run every candidate within ``budget_seconds`` and return the fastest correct one and all results."""
    deadline = time.monotonic() + budget_seconds
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the training loop runs: fixed shapes, autotuned kernels
    queue = candidates(device, tiny)
    results: list[ProbeResult] = []
    reference_loss: float | None = None
    compile_tried = tiny or device.type != "cuda"
    while queue:
        setup = queue.pop(0)
        left = deadline - time.monotonic()
        if left <= 1.0 and results:
            results.append(ProbeResult(setup, ok=False, note="skipped: probe time used up"))
            log(f"probe {setup.label:<52} skipped: probe time used up")
            continue
        # Eager candidates time about 2 s each, so a compiled one can still get COMPILE_MIN_SECONDS.
        slice_seconds = 0.2 if tiny else min(EAGER_SECONDS, max(1.0, left / (len(queue) + 2)))
        result = measure(setup, task, state, batch, device, slice_seconds, reference_loss,
                         min_steps=0 if tiny else 3, warmup=0 if tiny else WARMUP_STEPS)
        if reference_loss is None:
            reference_loss = result.loss
        results.append(result)
        log(f"probe {setup.label:<52} " + (f"{result.its:7.2f} it/s" if result.ok else f"failed: {result.note}")
            + (f"  loss {result.loss:.6g}" if result.loss is not None else ""))
        if not queue and not compile_tried:
            compile_tried = True
            best = max((r for r in results if r.ok), key=lambda r: r.its or 0.0, default=None)
            if best is not None and deadline - time.monotonic() >= COMPILE_MIN_SECONDS:
                queue.append(SetUp(best.setup.amp, best.setup.channels_last, best.setup.gfam, compile=True))
    best = max((r for r in results if r.ok), key=lambda r: r.its or 0.0, default=None)
    chosen = best.setup if best is not None else SetUp()
    log(f"probe chose: {chosen.label}" + (f" ({best.its:.2f} it/s)" if best is not None else " (nothing ran)"))
    return chosen, results
