"""The restoration options every command that runs a ``Restorer`` takes (``dagl-infer``, ``dagl-serve``).

One decorator, so the two commands cannot drift apart in names, defaults, ranges or help: a server restores
exactly as ``dagl-infer`` does with the same options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

from dagl.artefact import DEFAULT_BATCH, DEFAULT_OVERLAP, DEFAULT_TILE
from dagl.cli_common import device_option, precision_option, threads_option

from .loader import BACKEND_HELP, BACKENDS
from .tiling import TILINGS, tilings_help

F = TypeVar("F", bound=Callable[..., object])


def restoration_options(ensemble_help: str) -> Callable[[F], F]:
    """``--backend --device --tiling --tile --overlap --batch --ensemble --threads --precision``, in that order."""
    options = [
        click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True, help=BACKEND_HELP),
        device_option(),
        click.option("--tiling", type=click.Choice(list(TILINGS)), default="grid", show_default=True,
                     help=tilings_help()),
        click.option("--tile", type=click.IntRange(min=8), default=DEFAULT_TILE, show_default=True,
                     help="Grid tile side in pixels."),
        click.option("--overlap", type=click.IntRange(min=0), default=DEFAULT_OVERLAP, show_default=True,
                     help="Pixels shared by neighbouring grid tiles."),
        click.option("--batch", type=click.IntRange(min=1), default=DEFAULT_BATCH, show_default=True,
                     help="Tiles per network call."),
        click.option("--ensemble", is_flag=True, help=ensemble_help),
        threads_option(),
        precision_option(),
    ]

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply
