"""The restoration options every command that runs a ``Restorer`` takes (``dagl-infer``, ``dagl-serve``, ``dagl-eval``).

One decorator, so the commands cannot drift apart in names, ranges or help: a server restores exactly as
``dagl-infer`` does with the same options, and ``dagl-eval`` scores what they restore. Where a command's
defaults differ (``dagl-eval``: the paper's chop, ``--tiling reference``; the engine's own batch cap), it says so in
the decorator's parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from dagl.artefact import DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE
from dagl.cli.common import device_option, precision_option, threads_option

from .channels import CHROMA_CHOICES, DEFAULT_CHROMA
from .loader import BACKEND_HELP, BACKENDS
from .tiling import TILINGS, tilings_help

F = TypeVar("F", bound=Callable[..., object])


def backend_option() -> Callable[[F], F]:
    """``--backend``: every entry of the backend registry, or ``auto`` (by the artefact's kind)."""
    return click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                        help=BACKEND_HELP)


def tiling_option(default: str = "grid") -> Callable[[F], F]:
    """``--tiling``: every registered policy, with their summaries as help."""
    return click.option("--tiling", type=click.Choice(list(TILINGS)), default=default, show_default=True,
                        help=tilings_help())


def chroma_option() -> Callable[[F], F]:
    """``--chroma keep|restore``: what a gray task does with a colour photo's Cb, Cr (files in: ``dagl-infer``)."""
    return click.option("--chroma", type=click.Choice(CHROMA_CHOICES), default=DEFAULT_CHROMA, show_default=True,
                        help="A gray task (jpeg, denoise) given a colour image restores its luma (BT.601 YCbCr, as "
                             "JPEG codes it); 'restore' runs Cb and Cr through the same gray network too, each plane "
                             "at full resolution: ~3x the time, for +0.18 to +0.23 dB mean RGB PSNR (McMaster18 crops, "
                             "JPEG q10-q40; docs/colour.md); 'keep' keeps the decoded Cb, Cr. Only for gray tasks.")


def restoration_options(ensemble_help: str, tiling: str = "grid", batch: int | None = DEFAULT_BATCH,
                        precision_help: str | None = None) -> Callable[[F], F]:
    """``--backend --device --tiling --tile --overlap --batch --ensemble --threads --precision``, in that order.

    ``batch=None`` leaves ``--batch`` unset unless given, so ``Restorer`` caps it at what an engine takes.
    """
    options = [
        backend_option(),
        device_option(),
        tiling_option(tiling),
        click.option("--tile", type=click.IntRange(min=8), default=DEFAULT_TILE, show_default=True,
                     help="Grid tile side in pixels; keep it a multiple of 4 (GFAM's query stride: other sides "
                          "cost about 0.15 dB, docs/tiling.md)."),
        click.option("--overlap", type=click.IntRange(min=0), default=DEFAULT_OVERLAP, show_default=True,
                     help="Pixels shared by neighbouring grid tiles."),
        click.option("--batch", type=click.IntRange(min=1), default=batch, show_default=batch is not None,
                     help="Tiles per network call."),
        click.option("--ensemble", is_flag=True, help=ensemble_help),
        threads_option(),
        precision_option() if precision_help is None else precision_option(help=precision_help),
    ]

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply
