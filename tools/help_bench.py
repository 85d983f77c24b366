"""``python tools/help_bench.py``: how long each ``dagl-*`` command takes to print its ``--help``.

Each command runs in a fresh interpreter, as a user's shell starts it, and is timed from process
start to exit (the best of ``--repeats`` runs: the floor the code allows, not the machine's noise).
The heavy libraries a command needs (torch, onnx, onnxruntime, matplotlib) are imported inside its
body, so ``--help`` should stay far below the 2 s goal; the table also says which of them a
command's ``--help`` still imported.
"""

from __future__ import annotations

import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
#: Libraries that take seconds to import; none should be loaded to print help.
HEAVY = ("torch", "onnx", "onnxruntime", "matplotlib", "tensorrt", "polygraphy")
#: ``--help`` of subcommands, beside each command's own.
SUBCOMMANDS = {"dagl-eval": (("paper",),)}
HELP_SCRIPT = """import sys
from {module} import {name} as command
rc = command.run({args!r}, {prog!r}) if hasattr(command, "run") else command({args!r})  # dagl-train: main(argv)
print("HEAVY=" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
sys.exit(rc)
"""


def commands() -> dict[str, str]:
    """The installed ``dagl`` distribution's console scripts (pyproject's ``[project.scripts]``), each as the
    command it runs (``dagl.cli.console.COMMANDS``): name -> ``module:main``."""
    from dagl.cli.console import COMMANDS

    scripts = entry_points(group="console_scripts")
    return {ep.name: f"{COMMANDS[ep.name]}:main" for ep in sorted(scripts, key=lambda ep: ep.name)
            if ep.dist and ep.dist.name == "dagl"}


def help_cases() -> list[tuple[str, str, list[str]]]:
    """(label, ``module:function``, argv) for every command's and subcommand's ``--help``."""
    cases = []
    for prog, target in commands().items():
        cases.append((f"{prog} --help", target, ["--help"]))
        cases += [(f"{prog} {' '.join(sub)} --help", target, [*sub, "--help"]) for sub in SUBCOMMANDS.get(prog, ())]
    return cases


def run_help(target: str, argv: list[str], prog: str) -> tuple[float, int, str, list[str]]:
    """(seconds, exit status, help text, heavy modules imported) of one fresh-process ``--help``."""
    module, name = target.split(":")
    code = HELP_SCRIPT.format(module=module, name=name, args=argv, prog=prog, heavy=HEAVY)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    seconds = time.perf_counter() - start
    heavy = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    loaded = heavy[-1].removeprefix("HEAVY=").split(",") if heavy else ["?"]
    return seconds, done.returncode, done.stdout, [m for m in loaded if m]


@click.command()
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Fresh-process runs per command; the fastest is reported.")
def main(repeats: int) -> None:
    """Time every dagl command's --help in a fresh interpreter; print a Markdown table."""
    print("| command | --help seconds (best of %d) | heavy modules imported |" % repeats)
    print("|---|---:|---|")
    for label, target, argv in help_cases():
        runs = [run_help(target, argv, label.split()[0]) for _ in range(repeats)]
        best = min(seconds for seconds, *_ in runs)
        status, loaded = runs[-1][1], runs[-1][3]
        note = ", ".join(loaded) or "none"
        print(f"| `{label}` | {best:.2f}{'' if status == 0 else f' (exit {status})'} | {note} |")
    print(f"\nPython {sys.version.split()[0]}, {sys.platform}")


if __name__ == "__main__":
    main()
