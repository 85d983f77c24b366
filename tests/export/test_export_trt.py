"""The static TensorRT 11 check on hand-built graphs, and the engine build against the TensorRT 11 fake.

The fake (tests/fake_tensorrt.py) has only the names of the real TensorRT 11 bindings and records
what the build asked for in the plan it returns, so the tests catch what otherwise shows only on a
GPU machine: a removed weak-typing call, profile shapes in the wrong order, a sidecar missing keys.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import dagl.export.cli
import dagl.export.pipeline

from dagl.artefact import engine_build
import fake_tensorrt
from dagl.artefact import (GPU, SUPPORTED_TENSORRT, EngineSidecar, EngineTask, EngineUnavailable, Profile,
                           import_tensorrt, tensorrt_supported)
from dagl.artefact.engine_build import EngineBuildError, build_engine
from dagl.export.trt_check import check_tensorrt_compatible
from dagl.files import file_digest
from dagl.runtime import RuntimeLoadError
from dagl.runtime.base import ModelInfo
from dagl.runtime.trt import TensorRTRunner


def _graph(nodes, *, inputs=None, outputs=None, initializers=(), opset=17, elem=TensorProto.FLOAT):
    inputs = inputs or [helper.make_tensor_value_info("input", elem, ["N", 1, "H", "W"])]
    outputs = outputs or [helper.make_tensor_value_info("output", elem, ["N", 1, "H", "W"])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _problems(model) -> list[str]:
    return [str(p) for p in check_tensorrt_compatible(model)]


def test_plain_graph_passes():
    assert _problems(_graph([helper.make_node("Relu", ["input"], ["output"], name="act")])) == []


@pytest.mark.parametrize("op", ["NonZero", "Loop", "Col2Im"])
def test_refused_operators_are_named(op):
    node = helper.make_node(op, ["input"], ["output"], name="bad_node")
    problems = _problems(_graph([node]))
    assert problems and problems[0].startswith(f"node 'bad_node' ({op}):")


def test_unknown_operator_is_refused():
    node = helper.make_node("Hardmax", ["input"], ["output"], name="hm")
    assert _problems(_graph([node])) == ["node 'hm' (Hardmax): operator not in the TensorRT 11 support list"]


def test_double_data_is_refused():
    cast = helper.make_node("Cast", ["input"], ["wide"], to=TensorProto.DOUBLE, name="widen")
    back = helper.make_node("Cast", ["wide"], ["output"], to=TensorProto.FLOAT, name="narrow")
    problems = _problems(_graph([cast, back]))
    assert "node 'widen' (Cast): cast to DOUBLE not supported" in problems
    assert "node 'narrow' (Cast): type DOUBLE not supported for Cast" in problems


def test_opset_beyond_every_tensorrt_11_is_refused():
    relu = [helper.make_node("Relu", ["input"], ["output"])]
    assert _problems(_graph(relu, opset=24)) == []  # the newest opset every 11.x parser accepts
    problems = _problems(_graph(relu, opset=25))  # 11.5 and later only
    assert problems[0] == "node '<model>' (opset): opset 25 outside TensorRT 11's 9-24"


def test_reduce_axes_must_be_constant():
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    node = helper.make_node("ReduceMean", ["input", "axes"], ["output"], name="mean")
    model = _graph([node], inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, "H", "W"]),
                                   axes], opset=18)
    assert "node 'mean' (ReduceMean): input 1 must be a build-time constant" in _problems(model)
    const = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    ok = _graph([node], initializers=[const], opset=18)
    assert not any("build-time" in p for p in _problems(ok))


def test_unnamed_dynamic_dim_is_refused():
    value = helper.make_tensor_value_info("input", TensorProto.FLOAT, None)
    value.type.tensor_type.shape.dim.add()  # rank 1, neither fixed nor named
    problems = _problems(_graph([helper.make_node("Relu", ["input"], ["output"])], inputs=[value]))
    assert "node 'input' (graph I/O): axis 0 is neither fixed nor named" in problems


# --- engine build against the TensorRT 11 fake ------------------------------------------------

def _build(tmp_path: Path, fp16: bool) -> Path:
    """Build from a float32 or FP16 graph (float32 I/O either way, as dagl-export writes them)."""
    inner = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    nodes = [helper.make_node("Cast", ["input"], ["x"], to=inner), helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("Cast", ["y"], ["output"], to=TensorProto.FLOAT)]
    onnx_path = tmp_path / ("dagl-jpeg-fp16.onnx" if fp16 else "dagl-jpeg.onnx")
    onnx.save(_graph(nodes), str(onnx_path))
    profile = Profile(min=(1, 1, 16, 16), opt=(2, 1, 96, 96), max=(2, 1, 256, 256))
    plan = tmp_path / f"dagl-jpeg-{'fp16' if fp16 else 'fp32'}.plan"
    task = EngineTask(task="jpeg", channels=1, precision="fp16" if fp16 else "fp32", sigma=None, weights={})
    build_engine(onnx_path, plan, profile=profile, task=task)
    return plan


@pytest.mark.parametrize("fp16", [True, False])
def test_strongly_typed_build_writes_plan_and_sidecar(fake_trt, tmp_path, fp16):
    plan = _build(tmp_path, fp16=fp16)
    built = fake_tensorrt.read_plan(plan.read_bytes())
    assert built["onnx"] == ("dagl-jpeg-fp16.onnx" if fp16 else "dagl-jpeg.onnx")
    # No precision flags at all (the graph decides); TF32 cleared so float32 means float32.
    assert built["flags"] == []
    assert built["io"] == [["input", "input", "float32"], ["output", "output", "float32"]]
    assert built["profiles"] == [{"input": [[1, 1, 16, 16], [2, 1, 96, 96], [2, 1, 256, 256]]}]
    meta = json.loads(plan.with_name(plan.name + ".json").read_text())
    assert meta["tensorrt_version"] == fake_tensorrt.VERSION and meta["gpu_name"] == fake_tensorrt.GPU_NAME
    assert meta["compute_capability"] == "9.0" and meta["task"] == "jpeg" and meta["sigma"] is None
    assert (meta["min_shape"], meta["opt_shape"], meta["max_shape"]) == ([1, 1, 16, 16], [2, 1, 96, 96],
                                                                         [2, 1, 256, 256])
    assert meta["onnx_sha256"] == file_digest(tmp_path / built["onnx"])


def test_network_is_created_strongly_typed(fake_trt):
    flags = engine_build.network_flags(fake_trt)
    network = fake_trt.Builder(fake_trt.Logger(fake_trt.Logger.WARNING)).create_network(flags)
    assert network.get_flag(fake_trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def test_timing_cache_is_reused_between_builds(fake_trt, tmp_path):
    _build(tmp_path, fp16=True)
    assert (tmp_path / engine_build.TIMING_CACHE_NAME).read_bytes() == b"+tuned"
    _build(tmp_path, fp16=False)  # starts from the first build's cache and extends it
    assert (tmp_path / engine_build.TIMING_CACHE_NAME).read_bytes() == b"+tuned+tuned"


def test_unparsable_onnx_is_a_build_error(fake_trt, tmp_path):
    bad = tmp_path / "dagl-jpeg.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(EngineBuildError, match="TensorRT could not parse dagl-jpeg.onnx"):
        build_engine(bad, tmp_path / "x.plan", profile=Profile(*[(1, 1, 8, 8)] * 3),
                     task=EngineTask(task="jpeg", channels=1, precision="fp32", sigma=None, weights={}))
    assert not (tmp_path / "x.plan").exists()


def test_engine_runs_through_the_tensorrt_runner(fake_trt, tmp_path):
    """The run path (sidecar check, deserialise, bind by address, execute) against the fake."""
    plan = _build(tmp_path, fp16=True)
    info = ModelInfo(task="jpeg", channels=1, precision="fp16")
    batch = np.random.default_rng(0).random((2, 1, 20, 24), dtype=np.float32)
    with TensorRTRunner(plan, info, EngineSidecar.read(plan), device="cpu") as runner:
        np.testing.assert_array_equal(runner.infer(batch), 1 - batch)  # the fake engine's 1 - x
        with pytest.raises(RuntimeLoadError, match=r"accepts shapes from \[1, 1, 16, 16\]"):
            runner.infer(batch[:, :, :8])


@pytest.mark.parametrize("running, refusal", [
    ("11.5.0.20", r"built for TensorRT 11\.4\.0\.106 \(running 11\.5\.0\.20\); dagl supports TensorRT >=10\.12,<12"),
    ("10.8.0.43", r"TensorRT 10\.8\.0\.43 is not supported: .* TensorRT >=10\.12,<12"),
])
def test_engine_is_refused_by_another_or_unsupported_tensorrt(fake_trt, tmp_path, monkeypatch, running, refusal):
    plan = _build(tmp_path, fp16=False)
    monkeypatch.setattr(fake_trt, "__version__", running)
    runner = TensorRTRunner(plan, ModelInfo(task="jpeg", channels=1), EngineSidecar.read(plan), device="cpu")
    with pytest.raises(RuntimeLoadError, match=refusal):
        runner.activate()


@pytest.mark.slow
def test_dagl_export_builds_the_fp16_engine_from_the_fp16_onnx(fake_trt, tmp_path, monkeypatch):
    """The whole command on the fake: ``--precision fp16`` builds from ``dagl-jpeg-fp16.onnx``, strongly typed."""
    monkeypatch.setattr(dagl.export.pipeline, "current_gpu", lambda: GPU(fake_tensorrt.GPU_NAME, fake_tensorrt.GPU_CC))
    out = tmp_path / "out"
    result = CliRunner().invoke(dagl.export.cli.main, [
        "--task", "jpeg", "--weights", "random", "--precision", "fp16", "--engine-required", "--output-dir", str(out),
        "--min-shape", "16x16", "--opt-shape", "48x48", "--max-shape", "64x64", "--batch", "1"])
    assert result.exit_code == 0, result.output
    built = fake_tensorrt.read_plan((out / "dagl-jpeg-fp16.plan").read_bytes())
    assert built["onnx"] == "dagl-jpeg-fp16.onnx" and built["flags"] == []
    assert built["profiles"] == [{"input": [[1, 1, 16, 16], [1, 1, 48, 48], [1, 1, 64, 64]]}]
    sidecar = EngineSidecar.read(out / "dagl-jpeg-fp16.plan")
    assert sidecar.precision == "fp16" and sidecar.tensorrt_version == fake_tensorrt.VERSION
    assert sidecar.onnx_sha256 == file_digest(out / "dagl-jpeg-fp16.onnx")
    assert json.loads((out / "dagl-jpeg.json").read_text())["engine"] == "dagl-jpeg-fp16.plan"


@pytest.mark.parametrize("version", ["10.11.0.33", "12.0.0.1"])
def test_unsupported_tensorrt_is_refused_naming_the_supported_range(fake_trt, tmp_path, monkeypatch, version):
    monkeypatch.setattr(fake_trt, "__version__", version)
    with pytest.raises(EngineUnavailable, match=rf"TensorRT {version} is not supported: .* TensorRT >=10\.12,<12"):
        _build(tmp_path, fp16=False)
    assert not list(tmp_path.glob("*.plan"))


def test_supported_range_is_the_tensorrt_extra():
    """pyproject's ``tensorrt`` extra and the range the code enforces are one statement."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extra = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert f"tensorrt{SUPPORTED_TENSORRT}" in extra["project"]["optional-dependencies"]["tensorrt"]
    assert [tensorrt_supported(v) for v in ("10.11.1", "10.12.0.36", "10.16.1", "11.0.0", "11.4.0.106", "12.0")] \
        == [False, True, True, True, True, False]


def test_missing_tensorrt_is_engine_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    with pytest.raises(EngineUnavailable, match="tensorrt is not installed"):
        import_tensorrt()


def test_engine_on_a_torch_without_cuda_is_one_line(fake_trt, tmp_path, monkeypatch):
    """A .plan where TensorRT and a GPU (nvidia-smi) are found but torch has no CUDA: refused before deserialising."""
    import torch

    plan = _build(tmp_path, fp16=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runner = TensorRTRunner(plan, ModelInfo(task="jpeg", channels=1), EngineSidecar.read(plan))  # device cuda
    with pytest.raises(RuntimeLoadError) as excinfo:
        runner.activate()
    assert "TensorRT engines run on CUDA buffers from torch" in str(excinfo.value)
    assert "\n" not in str(excinfo.value) and not runner.is_active


@pytest.mark.slow
def test_export_library_call_returns_the_engine_and_its_sidecar(fake_trt, tmp_path, monkeypatch):
    """``dagl.export.export`` on the fake: the float32 engine is built from the float32 graph and returned."""
    monkeypatch.setattr(dagl.export.pipeline, "current_gpu", lambda: GPU(fake_tensorrt.GPU_NAME, fake_tensorrt.GPU_CC))
    out = tmp_path / "out"
    result = dagl.export.export("jpeg", "random", output_dir=out, engine_required=True, min_tile=(16, 16),
                                opt_tile=(32, 32), max_tile=(64, 64), batch=1)
    assert result.engine == out / "dagl-jpeg-fp32.plan" and result.sidecar == out / "dagl-jpeg-fp32.plan.json"
    assert result.files == [out / "dagl-jpeg.onnx", result.engine, result.sidecar, out / "dagl-jpeg.json"]
    assert sorted(p for p in out.iterdir() if p.name != engine_build.TIMING_CACHE_NAME) == sorted(result.files)
    assert fake_tensorrt.read_plan(result.engine.read_bytes())["onnx"] == "dagl-jpeg.onnx"
    assert EngineSidecar.read(result.engine).precision == "fp32"
