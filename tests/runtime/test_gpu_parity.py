"""GPU backends against CPU float32 PyTorch on real crops, through ``runtime.Restorer``.

Thresholds are dagl.runtime.compare's tolerances, as in the CPU parity tests: float32 paths max abs
difference <= 1e-4, FP16 paths PSNR of the output against the CPU output >= 50 dB. Each test skips with its reason where the GPU or the package is
missing; the GPU workflow sets DAGL_REQUIRE_GPU=1 so that there a missing piece fails instead of letting a
misconfigured runner pass by skipping everything.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dagl.artefact.naming import onnx_name
from dagl.data.datasets import centre_crop
from dagl.export.cli import main as export_main
from dagl.images.io import read_image
from dagl.runtime import Restorer
from dagl.runtime.backends import tolerance_for
from dagl.runtime.compare import Tolerance, compare

pytestmark = pytest.mark.gpu


def unavailable(reason: str) -> None:
    if os.environ.get("DAGL_REQUIRE_GPU") == "1":
        pytest.fail(f"DAGL_REQUIRE_GPU=1 but {reason}")
    pytest.skip(reason)


def require_cuda() -> None:
    if not torch.cuda.is_available():
        unavailable("no CUDA GPU visible to PyTorch")


def require_ort_cuda() -> None:
    require_cuda()
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        unavailable(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (pip install onnxruntime-gpu)")


def require_tensorrt() -> None:
    require_cuda()
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        unavailable(f"tensorrt is not importable ({exc}); pip install '.[tensorrt]'")


@pytest.fixture(scope="module")
def crops(datasets_dir) -> list[np.ndarray]:
    """Stored MATLAB JPEG q10 inputs (one channel): a 96x96 and an 80x112 crop, each cut into 4 tiles by the
    release's chop (``--tiling reference``)."""
    classic5 = read_image(datasets_dir / "classic5" / "jpeg_q10" / "barbara.jpeg")[..., 0]
    live1 = read_image(datasets_dir / "live1" / "jpeg_q10" / "bikes.jpeg")[..., 0]
    return [np.ascontiguousarray(centre_crop(classic5, 96)), np.ascontiguousarray(live1[200:280, 300:412])]


@pytest.fixture(scope="module")
def checkpoint(official_checkpoint) -> Path:
    return official_checkpoint("jpeg")


def restore_all(model: Path, crops: list[np.ndarray], **options) -> tuple[list[np.ndarray], Restorer]:
    with Restorer(model, task="jpeg", tiling="reference", **options) as restorer:
        return [restorer(crop) for crop in crops], restorer


@pytest.fixture(scope="module")
def cpu_outputs(checkpoint, crops) -> list[np.ndarray]:
    return restore_all(checkpoint, crops, backend="torch", device="cpu")[0]


def export(tmp_path_factory, checkpoint: Path, *args: str) -> Path:
    folder = tmp_path_factory.mktemp("export")
    result = CliRunner().invoke(export_main, ["--task", "jpeg", "--weights", str(checkpoint), "--output-dir",
                                              str(folder), *args])
    assert result.exit_code == 0, result.output
    return folder


def assert_parity(outputs: list[np.ndarray], baselines: list[np.ndarray], tolerance: Tolerance) -> None:
    for out, baseline in zip(outputs, baselines):
        assert out.shape == baseline.shape and out.dtype == np.float32
        verdict = compare(baseline, out, tolerance)
        assert verdict.passed, verdict.summary


def test_torch_cuda_fp32(checkpoint, crops, request):
    require_cuda()
    outputs, _ = restore_all(checkpoint, crops, backend="torch", device="cuda")
    assert_parity(outputs, request.getfixturevalue("cpu_outputs"), tolerance_for("torch", "fp32"))


def test_torch_cuda_fp16_autocast(checkpoint, crops, request):
    require_cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        outputs, _ = restore_all(checkpoint, crops, backend="torch", device="cuda")
    assert_parity(outputs, request.getfixturevalue("cpu_outputs"), tolerance_for("torch", "fp16"))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_cuda(checkpoint, crops, request, tmp_path_factory, precision):
    require_ort_cuda()
    folder = export(tmp_path_factory, checkpoint, "--precision", "fp16", "--onnx-only")
    name = "dagl-jpeg.onnx" if precision == "fp32" else "dagl-jpeg-fp16.onnx"
    outputs, restorer = restore_all(folder / name, crops, device="cuda")
    assert restorer.runner.device == "cuda", "ONNX Runtime fell back to the CPU"
    assert_parity(outputs, request.getfixturevalue("cpu_outputs"), tolerance_for("onnxruntime", precision))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine(checkpoint, crops, request, tmp_path_factory, precision):
    require_tensorrt()
    folder = export(tmp_path_factory, checkpoint, "--engine-required", "--precision", precision)
    # dagl-export's default engine takes one tile per call.
    outputs, restorer = restore_all(folder / f"dagl-jpeg-{precision}.plan", crops, batch=1)
    assert restorer.backend == "tensorrt"
    assert_parity(outputs, request.getfixturevalue("cpu_outputs"), tolerance_for("tensorrt", precision))


def require_ort_tensorrt() -> None:
    require_tensorrt()
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        unavailable(f"onnxruntime {ort.__version__} has no TensorrtExecutionProvider (pip install onnxruntime-gpu)")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnx_on_tensorrt_builds_its_engine_once(checkpoint, crops, request, tmp_path_factory, monkeypatch, precision):
    """``--backend tensorrt`` on an .onnx file: the engine is built into the cache, then found there."""
    require_tensorrt()
    folder = export(tmp_path_factory, checkpoint, "--precision", "fp16", "--onnx-only")
    cache_dir = tmp_path_factory.mktemp("engines")
    monkeypatch.setenv("DAGL_ENGINE_CACHE", str(cache_dir))
    model = folder / onnx_name("jpeg", None, precision)
    outputs, restorer = restore_all(model, crops, backend="tensorrt")
    assert restorer.backend == "tensorrt"
    assert_parity(outputs, request.getfixturevalue("cpu_outputs"), tolerance_for("tensorrt", precision))
    (plan,) = cache_dir.glob("*.plan")
    built = plan.stat().st_mtime_ns
    again, _ = restore_all(model, crops, backend="tensorrt")
    assert list(cache_dir.glob("*.plan")) == [plan] and plan.stat().st_mtime_ns == built  # reused, not rebuilt
    assert_parity(again, request.getfixturevalue("cpu_outputs"), tolerance_for("tensorrt", precision))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_onnxruntime_tensorrt_provider(checkpoint, crops, request, tmp_path_factory, monkeypatch, precision):
    """ONNX Runtime's TensorRT execution provider, with its engine and timing caches in the engine cache."""
    require_ort_tensorrt()
    folder = export(tmp_path_factory, checkpoint, "--precision", "fp16", "--onnx-only")
    cache_dir = tmp_path_factory.mktemp("engines")
    monkeypatch.setenv("DAGL_ENGINE_CACHE", str(cache_dir))
    model = folder / onnx_name("jpeg", None, precision)
    outputs, restorer = restore_all(model, crops, backend="onnxruntime-tensorrt", device="cuda")
    assert restorer.backend == "onnxruntime-tensorrt"
    assert_parity(outputs, request.getfixturevalue("cpu_outputs"), tolerance_for("onnxruntime-tensorrt", precision))
    assert any(path.is_file() for path in (cache_dir / "onnxruntime-tensorrt").rglob("*")), "no engine was cached"
