"""Our code and the TensorRT fake stay within TensorRT 11's Python API (tests/data/tensorrt11_names.txt).

The fake already raises on any unlisted name at run time; this adds the static side, which also
covers code the CPU tests cannot execute (GPU-only branches): every ``trt.X`` / ``tensorrt.X.Y``
in our sources must be a listed name, and none of the weak-typing API that TensorRT 11 removed may
appear at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import fake_tensorrt
from fake_tensorrt import ABSENT, PRESENT

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for folder in ("dagl", "export", "runtime", "calibration") for p in (ROOT / folder).rglob("*.py"))
#: ``trt.Name`` or ``tensorrt.Name.member``, not preceded by a dot (``dagl.runtime.trt.loader``
#: is a module path, not the bindings).
_ATTRIBUTE = re.compile(r"(?<![\w.])(?:trt|tensorrt)\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?")
#: Removed members whose bare name is also ours or plain prose (``ModelInfo.precision``,
#: ``tensorrt_build.build_engine``, "FP16"): only their qualified ``trt.`` uses can be told apart.
_AMBIGUOUS = {"precision", "build_engine", "FP16"}


def _uses() -> dict[str, list[str]]:
    """Qualified TensorRT names used in our sources -> where."""
    uses: dict[str, list[str]] = {}
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for top, member in _ATTRIBUTE.findall(line):
                owner_has_members = any(name.startswith(top + ".") for name in PRESENT | ABSENT)
                name = f"{top}.{member}" if member and owner_has_members else top
                uses.setdefault(name, []).append(f"{path.relative_to(ROOT)}:{number}")
    return uses


def test_name_list_is_consistent():
    assert len(PRESENT) > 80 and not PRESENT & ABSENT
    assert {"NetworkDefinitionCreationFlag.STRONGLY_TYPED", "Builder.build_serialized_network"} <= PRESENT
    assert {"BuilderFlag.FP16", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS", "ILayer.precision",
            "ILayer.set_output_type"} <= ABSENT


def test_fake_defines_only_tensorrt_11_names():
    assert fake_tensorrt.unlisted_names() == []


def test_sources_use_only_tensorrt_11_names():
    uses = _uses()
    assert "NetworkDefinitionCreationFlag.STRONGLY_TYPED" in uses  # the scan does see our build code
    unknown = {name: where for name, where in uses.items() if name not in PRESENT and not name.startswith("_")}
    assert unknown == {}, f"not in TensorRT 11: {unknown}"


def test_sources_never_use_the_removed_weak_typing_api():
    members = sorted({name.split(".")[-1] for name in ABSENT} - _AMBIGUOUS)
    pattern = re.compile(r"\b(" + "|".join(members) + r")\b")
    found = [f"{path.relative_to(ROOT)}:{number}: {match}" for path in SOURCES
             for number, line in enumerate(path.read_text().splitlines(), 1) for match in pattern.findall(line)]
    assert found == []
