"""The paper's test sets of a task, as plain data on its :class:`~dagl.tasks.configs.TaskConfig`.

A test set says where its clean images are (``<datasets>/<name>/``), how its degraded inputs are
obtained under the protocol (``docs/dagl-reference.md``, "The paper's evaluation protocol"), and
the paper's numbers for it. :mod:`dagl.data.datasets` reads them; so does ``dagl-eval paper`` (the table).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProtocolNoise:
    """Inputs made at test time: the protocol's seeded Gaussian noise of the asked sigma, not clipped."""

    takes_sigma = True
    takes_quality = False

    def describe(self, sigma: float | None, quality: int | None) -> str:
        return f"Gaussian noise sigma {sigma:g}, torch seed 1"

    def tag(self, name: str, sigma: float | None, quality: int | None) -> str:
        return f"{name}-s{sigma:g}"


@dataclass(frozen=True)
class StoredInputs:
    """Inputs stored beside the clean images, in ``<set>/<folder>/`` (``<folder><quality>`` when by quality)."""

    folder: str
    #: What the inputs are, for report headers ("stored GRBG mosaic"; a quality is appended when by quality).
    what: str
    #: One folder per JPEG quality (``jpeg_q10/``...): the set needs ``--quality``.
    by_quality: bool = False
    takes_sigma = False

    @property
    def takes_quality(self) -> bool:
        return self.by_quality

    def subfolder(self, quality: int | None) -> str:
        return f"{self.folder}{quality}" if self.by_quality else self.folder

    def describe(self, sigma: float | None, quality: int | None) -> str:
        return f"{self.what}{quality}" if self.by_quality else self.what

    def tag(self, name: str, sigma: float | None, quality: int | None) -> str:
        return f"{name}-q{quality}" if self.by_quality else name


SetInputs = ProtocolNoise | StoredInputs


@dataclass(frozen=True)
class PaperSet:
    """One of the paper's test sets for a task, with the paper's results on it."""

    name: str
    description: str
    #: Where the paper reports it ("Table 1").
    table: str
    #: The paper's PSNR (dB, x8 self-ensemble) per variant: (sigma or JPEG quality, None for a task without
    #: variants, PSNR) pairs in the paper's order.
    paper_psnr: tuple[tuple[int | None, float], ...]
    #: How its degraded inputs are obtained; None when the set cannot be run here (see ``unavailable``).
    inputs: SetInputs | None = None
    paper_ssim: float | None = None
    #: Why the set cannot be evaluated with the data here; None when it can.
    unavailable: str | None = None
