"""Every command's --help is instant: it imports none of torch, onnx, onnxruntime, matplotlib.

Checked by what a fresh interpreter has imported after printing the help (deterministic), not by a
timed assert; the seconds are measured by ``python tools/help_bench.py`` (docs/help-bench.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from help_bench import HEAVY, commands, help_cases, run_help

ROOT = Path(__file__).resolve().parents[2]
#: dagl/train/cli.py imports dagl.network.gfam (torch) at module import; that module is outside this change.
SLOW_HELP: dict[str, str] = {}  # label -> why its --help still imports a heavy library


def test_every_command_of_pyproject_is_benchmarked():
    section = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
    declared = dict(re.findall(r'^(dagl-[a-z]+) = "([^"]+)"', section, re.M))
    labels = [label for label, *_ in help_cases()]
    assert set(commands()) == set(declared) and len(declared) == 7
    assert all(target.startswith("dagl.cli.console:") for target in declared.values())
    assert {label.split()[0] for label in labels} == set(declared) and "dagl-eval paper --help" in labels


@pytest.mark.slow
@pytest.mark.parametrize("label,target,argv", [
    pytest.param(*case, marks=[pytest.mark.xfail(strict=True, reason=SLOW_HELP[case[0]])] if case[0] in SLOW_HELP else [],
                 id=case[0]) for case in help_cases()])
def test_help_imports_no_heavy_library(label, target, argv):
    _, status, text, loaded = run_help(target, argv, label.split()[0])
    assert status == 0 and "Usage:" in text and "--help" in text
    assert loaded == [], f"{label} imported {', '.join(loaded)} (of {', '.join(HEAVY)})"
