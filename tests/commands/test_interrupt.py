"""Ctrl-C (SIGINT) and SIGTERM at any moment of a command: one line, exit 128 + signal, no partial file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from crafted import tiny_onnx

SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
def test_a_signal_while_the_command_still_imports_is_one_line(tmp_path, signum, code):
    """From a console script's first line, a signal is one line and an exit, never a traceback, even while
    the command's module still imports (a stand-in module that signals itself as it imports)."""
    (tmp_path / "importing_cli.py").write_text(f"import os, time\nos.kill(os.getpid(), {int(signum)})\n"
                                               "time.sleep(60)\nprint('not interrupted')\n")
    script = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from dagl.cli import console; "
              "console.COMMANDS['dagl-infer'] = 'importing_cli'; console.infer()")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr, result.stdout) == (code, "dagl-infer: error: interrupted\n", "")


def test_every_console_script_starts_through_the_signal_handling(monkeypatch):
    """[project.scripts] names a dagl.cli.console function per command, and each runs its command's module."""
    import tomllib

    import click
    from importlib import import_module
    from pathlib import Path

    from dagl.cli import console

    scripts = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == set(console.COMMANDS)
    for prog, target in scripts.items():
        module, function = target.split(":")
        started: list[str] = []
        monkeypatch.setattr(console, "run", started.append)
        getattr(console, function)()
        assert (module, started) == ("dagl.cli.console", [prog])
        command = import_module(console.COMMANDS[prog])
        assert callable(command.main)
        assert any(isinstance(value, click.Command) and value.name == prog for value in vars(command).values())


def test_library_users_keep_their_signal_handlers():
    """Importing dagl installs nothing, even in a process named like a command."""
    script = ("import signal, sys; sys.argv[0] = 'dagl-infer'; import dagl, dagl.runtime; "
              "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, "
              "signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True True", result.stderr


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
def test_a_signal_during_inference_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch, signum, code):
    from dagl.runtime.cli import main
    from dagl.runtime.onnxrt import OnnxRuntimeRunner

    model = tiny_onnx(tmp_path / "m.onnx")
    Image.fromarray(np.full((40, 40), 90, np.uint8)).save(tmp_path / "in.png")
    real = OnnxRuntimeRunner.infer_impl

    def infer_then_signal(self, batch):
        os.kill(os.getpid(), signum)  # delivered to the main thread as this Python frame returns
        return real(self, batch)

    monkeypatch.setattr(OnnxRuntimeRunner, "infer_impl", infer_then_signal)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    out = tmp_path / "out"
    assert main.run([str(model), str(tmp_path / "in.png"), "-o", str(out / "x.png"), "--tile", "16",
                     "--overlap", "4"]) == code
    assert [line for line in capsys.readouterr().err.splitlines() if "error" in line] == ["dagl-infer: error: interrupted"]
    assert not out.exists() or list(out.iterdir()) == []
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers given back


def test_a_forked_worker_keeps_pythons_default_behaviour():
    """DataLoader workers inherit the handlers: SIGTERM still ends them as SIG_DFL would (killed by signal 15)."""
    from dagl.cli.interrupt import signals_interrupt

    ready, tell = os.pipe()
    with signals_interrupt():
        pid = os.fork()
        if pid == 0:  # the child: say it runs (a signal before CPython's after-fork reset is dropped), then wait
            import time

            try:
                os.write(tell, b"r")
                time.sleep(30)
            finally:  # never return into the forked copy of pytest
                os._exit(0)
        assert os.read(ready, 1) == b"r"
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
    os.close(ready)
    os.close(tell)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
