"""The README's commands and Python, and every command's --help examples, run as written.

Each runs in a folder holding what the examples name (a random-weight ``model_best.pt`` in the
release's format, ``dagl-jpeg.onnx``, ``photo.png``/``photo.jpg``, ``noisy.png``, ``scans/``, an empty
``weights/``), through the installed entry points. What cannot run here is skipped with its reason:
a GPU or TensorRT, hours of training, full test sets on a CPU, or installing packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest

from dagl.images.io import write_image
from help_bench import commands
from colour_images import colour_jpeg

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

#: (pattern, reason) for examples that cannot run on this machine; the first match decides.
CANNOT_RUN = [
    (r"pip install|tools/serve-env\.sh", "installs packages: the environment under test is that install"),
    (r"^tools/test\.sh", "the test command itself"),
    (r"\.plan\b|--engine-required|polygraphy", "needs TensorRT and an NVIDIA GPU"),
    (r"dagl-train|torchrun", "trains for 400,000 iterations (hours on a GPU)"),
    (r"dagl-eval (?!paper).*--dataset classic5.*--images", "a classic5 image with the release's chop: minutes on a CPU"),
    (r"dagl-eval (?!paper).*--dataset classic5", "the full classic5 set with the release's chop: hours on a CPU"),
    (r"dagl-bench .*--cpu-paths(?!.*--image)", "seven CPU paths on the datasets' barbara: many minutes on a CPU"),
    (r"^dagl-serve|--server ", "a server runs until stopped, its clients need one: tests/runtime/test_serve.py runs both"),
]


def _shell_lines(block: str) -> list[str]:
    """Commands of a bash block: comments dropped, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def readme_examples() -> list[tuple[str, str, str]]:
    """(id, kind, text) for every bash command and Python block of the README."""
    examples = []
    for kind, block in re.findall(r"```(bash|python)\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        texts = _shell_lines(block) if kind == "bash" else [block]
        examples += [(f"README:{text.splitlines()[0][:60]}", kind, text) for text in texts]
    return examples


def help_examples() -> list[tuple[str, str, str]]:
    """(id, "bash", command) for each example line of each command's --help (two spaces end a command)."""
    import importlib

    examples = []
    for prog, target in commands().items():
        module, name = target.split(":")
        command = getattr(importlib.import_module(module), name)
        command = command if isinstance(command, click.Command) else importlib.import_module(module).command
        texts = [command.get_help(click.Context(command, info_name=prog))]
        if isinstance(command, click.Group):
            texts += [sub.get_help(click.Context(sub, info_name=f"{prog} {sub_name}"))
                      for sub_name, sub in command.commands.items()]
        for text in texts:
            for line in text.splitlines():
                match = re.match(r"\s+(dagl-[a-z]+ (?!\.\.\.)\S.*?)(?:\s{2,}.*)?$", line)
                if match and "<" not in match.group(1) and not match.group(1).endswith("\\"):
                    examples.append((f"{prog} --help:{match.group(1)[:60]}", "bash", match.group(1)))
    return list({text: (label, kind, text) for label, kind, text in examples}.values())


def all_examples() -> list[tuple[str, str, str]]:
    """The README's and the --help examples, each text once (the README repeats some help examples)."""
    return list({text: (label, kind, text) for label, kind, text in readme_examples() + help_examples()}.values())


def _reason(text: str) -> str | None:
    return next((reason for pattern, reason in CANNOT_RUN if re.search(pattern, text)), None)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory, official_checkpoint, jpeg_onnx) -> Path:
    """One folder holding every file the examples name; each example gets a hard-linked copy."""
    folder = tmp_path_factory.mktemp("examples")
    shutil.copy(official_checkpoint("jpeg"), folder / "model_best.pt")
    shutil.copy(jpeg_onnx, folder / "dagl-jpeg.onnx")
    rng = np.random.default_rng(0)
    write_image(folder / "photo.png", rng.random((32, 40), dtype=np.float32), 8)
    write_image(folder / "noisy.png", rng.random((24, 24), dtype=np.float32), 8)
    colour_jpeg(folder / "photo.jpg", 32, 40)
    (folder / "scans").mkdir()
    write_image(folder / "scans" / "a.png", rng.random((16, 16), dtype=np.float32), 8)
    (folder / "weights").mkdir()
    (folder / "docs").mkdir()
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind,text", [pytest.param(kind, text, id=label)
                                       for label, kind, text in all_examples()])
def test_example_runs_as_written(kind, text, fixtures, tmp_path):
    reason = _reason(text)
    if reason:
        pytest.skip(reason)
    cwd = tmp_path / "cwd"
    shutil.copytree(fixtures, cwd, copy_function=os.link)
    env = os.environ | {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    argv = ["bash", "-c", text] if kind == "bash" else [sys.executable, "-c", text]
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{text}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr


def test_every_example_is_collected_and_the_skips_are_few():
    texts = [text for _, _, text in all_examples()]
    assert any(text.startswith("dagl-infer dagl-jpeg.onnx photo.png -o clean.png") for text in texts)
    assert any("--side-by-side compare/" in text for text in texts) and any("dagl.load" in text for text in texts)
    runnable = [text for text in texts if not _reason(text)]
    assert len(runnable) >= 10, runnable
