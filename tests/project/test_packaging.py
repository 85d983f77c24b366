"""The installed toolkit adds one top-level name, `dagl`, and carries every package of the tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The user's top-level folders and the dotted names they install under.
FOLDERS = {"dagl": "dagl", "export": "dagl.export", "runtime": "dagl.runtime", "calibration": "dagl.calibration"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(out)], check=True, capture_output=True)
    (path,) = out.glob("dagl-*.whl")
    return path


def _source_packages() -> set[str]:
    found = set()
    for folder, dotted in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((dotted, *parts)))
    return found


@pytest.mark.slow
def test_wheel_installs_only_the_dagl_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"dagl"}
    packages = {str(Path(name).parent).replace("/", ".") for name in names if name.endswith("/__init__.py")}
    assert packages == _source_packages()  # a new sub-package not listed in pyproject.toml would be missing
    assert "dagl/calibration/fp16_ranges.json" in names


@pytest.mark.slow
def test_installed_toolkit_and_a_foreign_runtime_module_coexist(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "runtime.py").write_text("WHO = 'someone else'\n")
    (other / "export.py").write_text("WHO = 'someone else too'\n")
    code = ("import runtime, export, dagl.runtime, dagl.export.onnx; "
            "print(runtime.WHO, '|', export.WHO, '|', dagl.runtime.__file__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": f"{other}:{target}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    foreign, foreign_too, ours = (part.strip() for part in result.stdout.split("|"))
    assert (foreign, foreign_too) == ("someone else", "someone else too")
    assert Path(ours).is_relative_to(target)
