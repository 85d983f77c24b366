"""``dagl-infer jpeg IMAGE`` (the README's first command) with ``--backend auto``: it says which path it took;
on this machine with OpenVINO and a bfloat16 CPU that is OpenVINO bf16, within bfloat16's bound of PyTorch
float32; without either it is PyTorch float32, as before; an explicit backend or precision is taken as given."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from dagl.images.io import write_image
from dagl.runtime import auto
from dagl.runtime import cli as infer_cli
from dagl.runtime.auto import Capabilities
from dagl.runtime.backends import tolerance_for
from dagl.runtime.base import RuntimeLoadError
from dagl.runtime.compare import compare

FAST_LINE = "dagl-infer: backend: openvino bf16 (auto: the fastest CPU path within 0.05 dB of float32"


@pytest.fixture
def image(tmp_path):
    return write_image(tmp_path / "in.png", np.random.default_rng(3).random((24, 28), dtype=np.float32), 8)


@pytest.fixture(autouse=True)
def engine_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGL_ENGINE_CACHE", str(tmp_path / "cache"))


def infer(*args: str):
    return CliRunner().invoke(infer_cli.main, [*args, "--device", "cpu", "--threads", "1", "--tile", "16",
                                               "--overlap", "4"])


@pytest.mark.slow
def test_the_readme_command_takes_openvino_bf16_here_and_stays_within_its_bound(image, tmp_path):
    capabilities = auto.cpu_capabilities()
    if not (capabilities.openvino and capabilities.bf16):
        pytest.skip(f"this machine has no OpenVINO bfloat16 path ({capabilities}): auto is PyTorch float32 here")
    fast = infer("jpeg", str(image), "-o", str(tmp_path / "auto.npy"))
    assert fast.exit_code == 0, fast.output
    assert FAST_LINE in fast.stderr.splitlines()[0]
    assert "with openvino (cpu, grid tiling)" in fast.stderr
    plain = infer("jpeg", str(image), "-o", str(tmp_path / "torch.npy"), "--backend", "torch")
    assert plain.exit_code == 0, plain.output
    assert "backend:" not in plain.stderr and "with torch (cpu, grid tiling)" in plain.stderr  # as before
    verdict = compare(np.load(tmp_path / "torch.npy"), np.load(tmp_path / "auto.npy"),
                      tolerance_for("openvino", "bf16"))
    assert verdict, verdict.summary


@pytest.mark.slow
def test_without_the_fast_path_auto_is_pytorch_float32_and_says_why(image, tmp_path, monkeypatch):
    monkeypatch.setattr(auto, "cpu_capabilities", lambda: Capabilities(openvino=True, bf16=False))
    done = infer("jpeg", str(image), "-o", str(tmp_path / "out.png"))
    assert done.exit_code == 0, done.output
    assert done.stderr.splitlines()[0] == ("dagl-infer: backend: torch fp32 (auto: this CPU has no bfloat16 "
                                           "arithmetic (AVX512-BF16 or AMX) for OpenVINO's bfloat16 path)")
    assert "with torch (cpu, grid tiling)" in done.stderr


@pytest.mark.slow
def test_an_openvino_that_cannot_run_the_network_falls_back_to_pytorch_in_one_note(image, tmp_path, monkeypatch):
    from dagl.runtime.openvino.runner import OpenVINOWeightsRunner

    def fails(self):
        raise RuntimeLoadError("in.pt: OpenVINO cannot convert its network (unsupported op)")

    monkeypatch.setattr(auto, "cpu_capabilities", lambda: Capabilities(openvino=True, bf16=True))
    monkeypatch.setattr(OpenVINOWeightsRunner, "activate_impl", fails)
    done = infer("jpeg", str(image), "-o", str(tmp_path / "out.png"))
    assert done.exit_code == 0, done.output
    assert done.stderr.splitlines()[0] == ("dagl-infer: note: in.pt: OpenVINO cannot convert its network "
                                           "(unsupported op); running it on torch float32 instead")
    assert "backend:" not in done.stderr
    assert "with torch (cpu, grid tiling)" in done.stderr


def test_an_explicit_backend_or_precision_is_taken_as_given(image, tmp_path, monkeypatch):
    monkeypatch.setattr(auto, "cpu_capabilities", lambda: pytest.fail("auto's rule ran for an explicit choice"))
    done = infer("jpeg", str(image), "-o", str(tmp_path / "out.png"), "--precision", "bf16")
    assert done.exit_code == 2
    assert "--backend torch does not run bfloat16" in done.stderr and "backend:" not in done.stderr
