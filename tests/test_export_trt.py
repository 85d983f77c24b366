"""The static TensorRT-10 check on hand-built graphs, and the engine build against a fake tensorrt.

The fake records what the build asks of TensorRT, so the test catches the mistakes that only show
on a GPU machine otherwise: profile shapes in the wrong order, FP16 without
OBEY_PRECISION_CONSTRAINTS, float32 pins on the wrong layers, a sidecar missing keys.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from dagl.export import tensorrt_build
from dagl.artefact import GPU, EngineUnavailable, Profile, import_tensorrt
from dagl.export.tensorrt_build import EngineTask, build_engine
from dagl.export.trt_check import check_tensorrt_compatible


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
    assert _problems(_graph([node])) == ["node 'hm' (Hardmax): operator not in the TensorRT 10 support list"]


def test_double_data_is_refused():
    cast = helper.make_node("Cast", ["input"], ["wide"], to=TensorProto.DOUBLE, name="widen")
    back = helper.make_node("Cast", ["wide"], ["output"], to=TensorProto.FLOAT, name="narrow")
    problems = _problems(_graph([cast, back]))
    assert "node 'widen' (Cast): cast to DOUBLE not supported" in problems
    assert "node 'narrow' (Cast): type DOUBLE not supported for Cast" in problems


def test_opset_beyond_tensorrt_10_0_is_refused():
    problems = _problems(_graph([helper.make_node("Relu", ["input"], ["output"])], opset=21))
    assert problems[0] == "node '<model>' (opset): opset 21 outside TensorRT 10's 9-20"


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


# --- engine build against a fake tensorrt -------------------------------------------------------

class _Tensor:
    def __init__(self, dtype):
        self.dtype = dtype


class _Layer:
    def __init__(self, name, metadata, dtype, kind="ELEMENTWISE"):
        self.name, self.metadata, self.precision, self.type = name, metadata, None, kind
        self.outputs = [_Tensor(dtype)]
        self.output_types = {}
        self.num_outputs = 1

    def get_output(self, i):
        return self.outputs[i]

    def set_output_type(self, i, dtype):
        self.output_types[i] = dtype


def _fake_tensorrt(calls: dict, layers: list[_Layer]) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.99.0"
    trt.float32, trt.float16, trt.int64 = "float32", "float16", "int64"
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", OBEY_PRECISION_CONSTRAINTS="OBEY")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.LayerType = types.SimpleNamespace(CONSTANT="CONSTANT")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})

    class Network:
        num_layers = len(layers)

        def get_layer(self, i):
            return layers[i]

    class Parser:
        def __init__(self, network, logger):
            self.num_errors = 0

        def parse_from_file(self, path):
            calls["parsed"] = path
            return True

    class Cache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return self.data + b"+tuned"

    class Config:
        def __init__(self):
            self.flags, self.cache = [], None

        def set_memory_pool_limit(self, pool, size):
            calls["workspace"] = (pool, size)

        def add_optimization_profile(self, profile):
            calls["profile"] = profile.shapes

        def set_flag(self, flag):
            calls.setdefault("flags", []).append(flag)

        def create_timing_cache(self, data):
            calls.setdefault("cache_in", []).append(data)
            return Cache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            self.shapes = (name, lo, opt, hi)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["network_flags"] = flags
            return Network()

        create_builder_config = staticmethod(Config)
        create_optimization_profile = staticmethod(Profile)

        def build_serialized_network(self, network, config):
            return b"PLAN"

    trt.Builder, trt.OnnxParser = Builder, Parser
    return trt


@pytest.fixture
def fake_trt(monkeypatch):
    calls: dict = {}
    layers = [
        _Layer("scores", "[ONNX Layer: /h/MatMul]", "float16"),
        _Layer("fused", "[ONNX Layer: /h/Mul_4]\x1f[ONNX Layer: /h/Softmax]", "float16"),
        _Layer("mask", "[ONNX Layer: /h/Greater]", "bool"),
        _Layer("conv", "[ONNX Layer: /body/Conv]", "float16"),
        _Layer("/h/Sub", "", "float16"),  # no metadata: matched by name
        _Layer("scale", "[ONNX Layer: /h/Constant_3]", "float16", kind="CONSTANT"),
    ]
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(calls, layers))
    monkeypatch.setattr(tensorrt_build, "current_gpu", lambda: GPU("Fake H100", "9.0"))
    return calls, layers


def _build(tmp_path: Path, fp16: bool) -> Path:
    onnx_path = tmp_path / "dagl-jpeg.onnx"
    onnx.save(_graph([helper.make_node("Relu", ["input"], ["output"])]), str(onnx_path))
    profile = Profile(min=(1, 1, 16, 16), opt=(2, 1, 96, 96), max=(2, 1, 256, 256))
    plan = tmp_path / f"dagl-jpeg-{'fp16' if fp16 else 'fp32'}.plan"
    fp32_nodes = {"/h/MatMul", "/h/Softmax", "/h/Greater", "/h/Sub", "/h/Constant_3"}
    task = EngineTask(task="jpeg", channels=1, precision="fp16" if fp16 else "fp32", sigma=None, weights={})
    build_engine(onnx_path, plan, profile=profile, fp16=fp16, fp32_nodes=fp32_nodes, task=task)
    return plan


def test_fp16_build_pins_attention_layers_and_writes_sidecar(fake_trt, tmp_path):
    calls, layers = fake_trt
    plan = _build(tmp_path, fp16=True)
    assert calls["profile"] == ("input", (1, 1, 16, 16), (2, 1, 96, 96), (2, 1, 256, 256))
    assert calls["flags"] == ["FP16", "OBEY"] and calls["network_flags"] == 0
    pinned = {layer.name for layer in layers if layer.precision == "float32"}
    assert pinned == {"scores", "fused", "/h/Sub"}  # no pins on the bool mask or weights; conv stays free
    assert all(layer.output_types == {0: "float32"} for layer in layers if layer.name in pinned)
    assert plan.read_bytes() == b"PLAN"
    meta = json.loads(plan.with_name(plan.name + ".json").read_text())
    assert meta["tensorrt_version"] == "10.99.0" and meta["gpu_name"] == "Fake H100"
    assert meta["compute_capability"] == "9.0" and meta["task"] == "jpeg" and meta["sigma"] is None
    assert (meta["min_shape"], meta["opt_shape"], meta["max_shape"]) == ([1, 1, 16, 16], [2, 1, 96, 96],
                                                                         [2, 1, 256, 256])
    assert meta["onnx_sha256"] == tensorrt_build.file_digest(tmp_path / "dagl-jpeg.onnx")


def test_timing_cache_is_reused_between_builds(fake_trt, tmp_path):
    calls, layers = fake_trt
    _build(tmp_path, fp16=True)
    _build(tmp_path, fp16=False)
    assert calls["cache_in"] == [b"", b"+tuned"]
    assert (tmp_path / tensorrt_build.TIMING_CACHE_NAME).read_bytes() == b"+tuned+tuned"


def test_fp32_build_sets_no_precision_flags(fake_trt, tmp_path):
    calls, layers = fake_trt
    _build(tmp_path, fp16=False)
    assert "flags" not in calls and all(layer.precision is None for layer in layers)


def test_missing_tensorrt_is_engine_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as if not installed
    with pytest.raises(EngineUnavailable, match="tensorrt is not installed"):
        import_tensorrt()
