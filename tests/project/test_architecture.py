"""The layering of docs/architecture.md, read from the imports: build and serve never lean on each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: folder -> the dotted package it installs as
PACKAGES = {"export": "dagl.export", "runtime": "dagl.runtime", "calibration": "dagl.calibration"}
#: (importing folder, imported package) pairs that must not exist. The core folder (training in dagl/train
#: included) never leans on build or serve: no arrow back up, no dagl/ <-> runtime/ circle.
FORBIDDEN = [("runtime", "dagl.export"), ("export", "dagl.runtime"), ("calibration", "dagl.export"),
             ("calibration", "dagl.runtime"), ("dagl", "dagl.export"), ("dagl", "dagl.runtime"),
             ("dagl/train", "dagl.export"), ("dagl/train", "dagl.runtime")]
#: modules of the core and the artefact format: nothing above them may be imported from them
LOWER = ["dagl/artefact", "dagl/network", "dagl/tasks", "dagl/weights", "dagl/images", "dagl/data", "dagl/errors.py",
         "dagl/atomic.py", "dagl/chosen_weights.py"]


def _imports(source: str, package: str) -> set[str]:
    """Absolute names of every module ``source`` imports (relative imports resolved inside ``package``)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _package_of(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).parts
    return ".".join([PACKAGES.get(folder, folder), *rest[:-1]])


def _file_imports(path: Path) -> set[str]:
    return _imports(path.read_text(encoding="utf-8"), _package_of(path))


def _sources(place: str) -> list[Path]:
    target = ROOT / place
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


@pytest.mark.parametrize("folder, forbidden", FORBIDDEN)
def test_no_import_between_build_and_serve(folder, forbidden):
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in _sources(folder)
                 for name in _file_imports(path)
                 if name == forbidden or name.startswith(forbidden + ".")]
    assert offenders == []


def test_core_and_artefact_format_import_nothing_above_them():
    above = ("dagl.export", "dagl.runtime", "dagl.calibration", "dagl.cli", "dagl.train", "click")
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for place in LOWER for path in _sources(place)
                 for name in _file_imports(path) if name.startswith(above)]
    assert offenders == []


def test_the_rule_sees_a_forbidden_import():
    """The checker itself: a relative import climbing from runtime into dagl.export is resolved and caught."""
    names = _imports("from ...export.onnx import export_onnx\nimport numpy\n", "dagl.runtime.evaluate")
    assert {"dagl.export.onnx", "dagl.export.onnx.export_onnx", "numpy"} == names
