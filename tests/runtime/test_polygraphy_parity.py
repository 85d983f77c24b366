"""Polygraphy's Comparator on real classic5 q10 crops: ONNX Runtime (float32 and FP16 ONNX) vs PyTorch.

This is the CPU half of the parity check that ``polygraphy run --trt --onnxrt`` (README) runs on a
GPU machine, with the same data loader script; a random-weight CAR model keeps it small.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

import dagl
from dagl.calibration.policy import fp32_nodes
from dagl.export.fp16 import to_fp16
from dagl.runtime.base import ModelInfo
from dagl.runtime.backends import tolerance_for
from dagl.runtime.compare import ENGINE_VS_ONNX, Tolerance
from dagl.runtime.parity_data import load_data
from dagl.runtime.pyt import TorchRunner
from polygraphy_runners import PolygraphyRunner, compare_runners, onnxruntime_runner

CROP = 48
#: Crops per comparison: three of classic5's five images keep the check near 30 s on two cores.
COMPARED = 3


@pytest.fixture(scope="module")
def crops(datasets_dir):
    return list(load_data("classic5", quality=10, crop=CROP, root=datasets_dir))


@pytest.fixture(scope="module")
def onnx_paths(jpeg_onnx, tmp_path_factory):
    """The float32 export and its FP16 conversion (attention path float32), as dagl-export makes them."""
    fp32 = jpeg_onnx
    graph = onnx.load(str(fp32))
    fp16 = tmp_path_factory.mktemp("fp16") / "dagl-jpeg-fp16.onnx"
    onnx.save(to_fp16(graph, fp32_nodes(graph.graph, "jpeg")), str(fp16))
    return fp32, fp16


@pytest.fixture(scope="module")
def pytorch(official_checkpoint):
    info = ModelInfo(task="jpeg", channels=1)
    return PolygraphyRunner(TorchRunner(dagl.load("jpeg", weights=official_checkpoint("jpeg")), info))


def test_data_loader_yields_degraded_classic5_crops(crops, datasets_dir, monkeypatch):
    assert len(crops) == 5  # baboon, barbara, boats, lena, peppers
    assert all(feed["input"].shape == (1, 1, CROP, CROP) and feed["input"].dtype == np.float32 for feed in crops)
    assert all(0.0 <= feed["input"].min() and feed["input"].max() <= 1.0 for feed in crops)
    assert len({feed["input"].tobytes() for feed in crops}) == 5
    # Polygraphy calls load_data() bare: the environment chooses the set and the crops.
    monkeypatch.setenv("DAGL_DATASETS", str(datasets_dir))
    monkeypatch.setenv("DAGL_PARITY_CROP", "32")
    monkeypatch.setenv("DAGL_PARITY_LIMIT", "2")
    bare = list(load_data())
    assert [feed["input"].shape for feed in bare] == [(1, 1, 32, 32)] * 2
    explicit = next(load_data("classic5", quality=10, crop=32, root=datasets_dir))
    np.testing.assert_array_equal(bare[0]["input"], explicit["input"])


@pytest.mark.slow
def test_float32_onnx_matches_pytorch(pytorch, onnx_paths, crops):
    result = compare_runners(pytorch, onnxruntime_runner(onnx_paths[0]), crops[:COMPARED], tolerance_for("onnxruntime", "fp32"))
    print(result.summary)
    assert result.passed and result.count == COMPARED
    assert result.max_abs <= 1e-4


@pytest.mark.slow
def test_fp16_onnx_matches_pytorch_within_psnr(pytorch, onnx_paths, crops):
    result = compare_runners(pytorch, onnxruntime_runner(onnx_paths[1]), crops[:COMPARED], tolerance_for("onnxruntime", "fp16"))
    print(result.summary)
    assert result.passed and result.psnr >= 50.0
    assert result.max_abs > 0  # it really ran in FP16: not bit-identical to float32


@pytest.mark.slow
def test_comparator_verdict_fails_beyond_tolerance(pytorch, onnx_paths, crops):
    """The tolerance is enforced, not decorative: FP16 output is not within the float32 bound."""
    result = compare_runners(pytorch, onnxruntime_runner(onnx_paths[1]), crops[:1], Tolerance("too tight", max_abs=1e-7))
    assert not result.passed and result.max_abs > 1e-7


@pytest.mark.slow
def test_documented_polygraphy_command_accepts_the_data_loader(onnx_paths, datasets_dir):
    """The README's ``polygraphy run`` line, ONNX Runtime side only (TensorRT needs a GPU)."""
    script = subprocess.run([sys.executable, "-m", "dagl.runtime.parity_data"], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert script.endswith("polygraphy_loader/dagl_parity_data.py")
    polygraphy = [sys.executable, "-c", "import sys; from polygraphy.tools import main; sys.exit(main())"]
    env = {**os.environ, "DAGL_DATASETS": str(datasets_dir), "DAGL_PARITY_LIMIT": "1", "DAGL_PARITY_CROP": "32"}
    run = subprocess.run([*polygraphy, "run", str(onnx_paths[0]), "--onnxrt", "--data-loader-script",
                          f"{script}:load_data"], capture_output=True, text=True, env=env, timeout=300)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert "PASSED" in log and "input [dtype=float32, shape=(1, 1, 32, 32)]" in log


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_matches_onnxruntime_on_crops(onnx_paths, crops, tmp_path, precision):
    """The strongly typed engine of each graph against ONNX Runtime on the same graph (GPU only)."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (it needs an NVIDIA GPU machine)")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from dagl.artefact import EngineSidecar, EngineTask, Profile
    from dagl.artefact.engine_build import build_engine
    from dagl.runtime.trt import TensorRTRunner

    graph = onnx_paths[1] if precision == "fp16" else onnx_paths[0]
    plan = tmp_path / f"dagl-jpeg-{precision}.plan"
    build_engine(graph, plan, profile=Profile((1, 1, 16, 16), (1, 1, CROP, CROP), (1, 1, 64, 64)),
                 task=EngineTask(task="jpeg", channels=1, precision=precision, sigma=None, weights={}))
    engine = PolygraphyRunner(TensorRTRunner(plan, ModelInfo(task="jpeg", channels=1, precision=precision),
                                             EngineSidecar.read(plan)))
    result = compare_runners(onnxruntime_runner(graph), engine, crops[:COMPARED],
                     ENGINE_VS_ONNX[precision])
    print(result.summary)
    assert result.passed
