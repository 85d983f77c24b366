"""What every ``dagl-*`` command shares: the common options and the one way errors reach the user.

The commands sit on top of everything else, so this module may import from dagl's core but nothing
below it imports this module. It holds:

* :class:`Command` / :class:`Group`: click classes whose ``main`` turns a :class:`~dagl.errors.DaglError`
  into ONE line ``dagl-X: error: <message>`` with the error's ``exit_code`` (2 for the user's input,
  1 for a failure while working); click's own usage errors are the same one line, with exit 2, and so
  is an ``OSError`` of a name too long to look up (``ENAMETOOLONG``: only the user names paths). Nothing
  else is caught: any other exception is a bug and keeps its traceback.
* option decorators for the options several commands take with the same meaning: ``--task``,
  ``--sigma``, ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``), ``--threads``, ``--max-pixels``,
  ``--precision``.
"""

from __future__ import annotations

import errno
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from click.exceptions import NoArgsIsHelpError

from ..artefact.precision import PRECISIONS
from ..device import AUTO, DeviceError, is_auto, resolve_device
from ..errors import DaglError, UserInputError, path_error
from ..images import io
from ..suggest import did_you_mean
from ..tasks.configs import TASKS
from .interrupt import Interrupted, signals_interrupt

F = TypeVar("F", bound=Callable[..., Any])

#: -h works everywhere, and help text may use 100 columns (the examples are long command lines).
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
#: Exit status after Ctrl-C, as a shell reports a process killed by SIGINT (SIGTERM: 143).
INTERRUPTED = 130


def error_line(prog: str, message: str) -> str:
    """The one shape of an error line, so scripts can grep ``: error:`` across every command."""
    return f"{prog}: error: {message}"


def echo_error(prog: str, message: str) -> None:
    click.echo(error_line(prog, message), err=True)


class _OneLineErrors:
    """Mixin for click commands: DaglError and click's errors become one prefixed line and an exit code."""

    #: Said after "interrupted" when the user presses Ctrl-C (e.g. how to resume).
    interrupted_hint: str | None = None

    def __init__(self, *args: Any, context_settings: dict | None = None, interrupted_hint: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, context_settings={**CONTEXT_SETTINGS, **(context_settings or {})}, **kwargs)
        if interrupted_hint:
            self.interrupted_hint = interrupted_hint

    def run(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> int:
        """Run the command and return its exit status instead of exiting (for ``main(argv) -> int`` callers)."""
        prog = self.name or prog_name or "dagl"
        try:
            with signals_interrupt():
                result = super().main(args, prog_name or prog, standalone_mode=False, **extra)  # type: ignore[misc]
        except (click.exceptions.Abort, Interrupted) as exc:  # Abort: click's own, e.g. a prompt's Ctrl-D
            echo_error(prog, "interrupted" + (f"; {self.interrupted_hint}" if self.interrupted_hint else ""))
            return exc.exit_code if isinstance(exc, Interrupted) else INTERRUPTED
        except NoArgsIsHelpError as exc:  # a bare `dagl-eval`: the help is the answer, not an error line
            exc.show()
            return exc.exit_code
        except click.ClickException as exc:  # usage errors included: one line, exit 2, like any user error
            echo_error(prog, exc.format_message())
            return exc.exit_code
        except DaglError as exc:
            echo_error(prog, str(exc))
            return exc.exit_code
        except OSError as exc:  # a name too long to look up is always one the user gave; others are bugs
            if exc.errno != errno.ENAMETOOLONG:
                raise
            echo_error(prog, str(path_error(exc.filename or "a path", exc)))
            return UserInputError.exit_code
        return result if isinstance(result, int) else 0

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:  # the caller handles errors itself
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)  # type: ignore[misc]
        sys.exit(self.run(args, prog_name, complete_var=complete_var, **extra))


class Command(_OneLineErrors, click.Command):
    """A ``dagl-*`` command: ``@click.command("dagl-x", cls=Command)``."""


class Group(_OneLineErrors, click.Group):
    """A ``dagl-*`` command with subcommands; the subcommands' errors take the group's prefix."""

    command_class = click.Command


# ---- shared options ---------------------------------------------------------------------------


class NameChoice(click.Choice):
    """A :class:`click.Choice` whose refusal of a near miss names the choice meant (``did you mean 'jpeg'?``)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            hint = did_you_mean(str(value), [str(choice) for choice in self.choices])
            if not hint:
                raise
            self.fail(exc.message.rstrip(".") + hint, param, ctx)


def task_option(required: bool = False, help: str = "Which of the paper's networks.") -> Callable[[F], F]:
    """``--task``: one of the registered tasks (dagl/tasks/configs.py)."""
    return click.option("--task", required=required, type=NameChoice(list(TASKS)), help=help)


#: The noise level on the 0-255 scale; which values a *model* exists for is the task's rule
#: (:meth:`dagl.tasks.configs.TaskConfig.check_sigma`), applied where a model is picked.
SIGMA = click.IntRange(1, 255)


def sigma_option(help: str = "Noise level (0-255 scale) of the denoise model: 15, 25 or 50.") -> Callable[[F], F]:
    """``--sigma``: an integer noise level, the same type in every command."""
    return click.option("--sigma", type=SIGMA, default=None, help=help)


class Device(click.ParamType):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, checked by :func:`dagl.device.resolve_device`.

    Refusing here, before any model loads, is the point: a typo or a missing GPU must not quietly run
    for an hour on the CPU. ``auto`` cannot fail and stays ``auto``: it is resolved where the model
    loads (``create_runner``), because resolving it means importing torch, and a group's default is
    converted even for a subcommand's ``--help`` (``dagl-eval paper --help`` must stay instant).
    """

    name = "auto|cpu|cuda[:N]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return AUTO if is_auto(value) else resolve_device(value)
        except DeviceError as exc:
            self.fail(str(exc), param, ctx)


def device_option(default: str = "auto") -> Callable[[F], F]:
    """``--device auto|cpu|cuda[:N]``: where PyTorch and ONNX Runtime run (TensorRT always runs on a GPU)."""
    return click.option("--device", type=Device(), default=default, show_default=True,
                        help="Where PyTorch and ONNX Runtime run (and which GPU TensorRT uses): auto = cuda if "
                             "torch sees a GPU, else cpu; cuda:N picks a GPU. A GPU that is not there is refused.")


class FiniteFloat(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses ``nan`` and ``inf``, which its comparisons let through."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


#: Seeds go to numpy and torch generators, which take 0 .. 2**32 - 1.
SEED = click.IntRange(0, 2**32 - 1)
#: More threads than 4 per core only adds contention; thousands crash or hang the libraries' pools.
MAX_THREADS = min(256, 4 * (os.cpu_count() or 1))


def threads_option() -> Callable[[F], F]:
    """``--threads N``: CPU threads of the backends (torch, ONNX Runtime intra-op), 1 to :data:`MAX_THREADS`."""
    return click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None,
                        help=f"CPU threads for PyTorch, ONNX Runtime and OpenVINO, 1 to {MAX_THREADS} (4 per core; "
                             f"default: the library's own choice).")


def precision_option(default: str | None = None,
                     help: str = "Precision to compute at (default: the model's own). bf16 runs the float32 graph "
                                 "in bfloat16 (--backend openvino).") -> Callable[[F], F]:
    """``--precision NAME``: every entry of ``dagl/artefact/precision.py``, so a new precision is offered
    everywhere at once; what each backend runs is checked by the library, in one line."""
    return click.option("--precision", type=click.Choice(list(PRECISIONS)), default=default,
                        show_default=default is not None, help=help)


def _set_max_pixels(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    if value is not None:
        io.set_max_pixels(value)


#: What ``--max-pixels`` guards in a command that reads image files.
FILES_LIMIT = "Refuse input images with more pixels than this (default: {default}), before they are decoded into memory."


def max_pixels_option(help_text: str = FILES_LIMIT) -> Callable[[F], F]:
    """``--max-pixels N``: the largest input image read (dagl.images.io's limit), set before any input is read;
    ``help_text`` says what it guards in the command (``{default}``: the default limit)."""
    return click.option("--max-pixels", type=click.IntRange(min=1), default=None, expose_value=False,
                        callback=_set_max_pixels, is_eager=True,
                        help=help_text.format(default=f"{io.DEFAULT_MAX_PIXELS:,}"))
