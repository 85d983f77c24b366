"""The ``dagl-*`` console scripts: each installs the one-line signal handling, then imports its command.

A command's import takes seconds (torch, ONNX); a Ctrl-C or SIGTERM during it must end in the
command's one line, not a traceback from inside some import. That handling belongs to the scripts,
never to the library: ``import dagl`` leaves a program's own signal handlers alone.
"""

from __future__ import annotations

from importlib import import_module

from .interrupt import install_early

#: Each console script and the module whose ``main`` it runs ([project.scripts] points at the functions below).
COMMANDS = {
    "dagl-export": "dagl.export.cli",
    "dagl-infer": "dagl.runtime.cli",
    "dagl-bench": "dagl.runtime.bench",
    "dagl-eval": "dagl.runtime.evaluate.cli",
    "dagl-train": "dagl.train.cli",
    "dagl-serve": "dagl.runtime.serve.cli",
    "dagl-calibrate": "dagl.calibration.cli",
}


def run(prog: str) -> int | None:
    """Run console script ``prog``: signals are one line from here on, while its module still imports.

    Returns what the command's ``main`` returns (an exit status, or nothing: click exits itself)."""
    install_early(prog)
    return import_module(COMMANDS[prog]).main()


def export() -> int | None:
    return run("dagl-export")


def infer() -> int | None:
    return run("dagl-infer")


def bench() -> int | None:
    return run("dagl-bench")


def evaluate() -> int | None:
    return run("dagl-eval")


def train() -> int | None:
    return run("dagl-train")


def serve() -> int | None:
    return run("dagl-serve")


def calibrate() -> int | None:
    return run("dagl-calibrate")
