"""``dagl.export.export``, the call under dagl-export: it returns what it wrote, and writes nothing when it refuses."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from onnx import TensorProto, helper

import dagl.export.pipeline
from dagl.artefact import GRAPH_PRECISIONS, PRECISIONS, MetadataError, Precision, PrecisionError
from dagl.artefact.precision import BF16, FP16, FP32, INT8
from dagl.chosen_weights import WeightsInfo
from dagl.export import ExportResult, export
from dagl.export.pipeline import ExportOptionError, GraphRefusedError
from dagl.export.trt_check import check_tensorrt_compatible
from dagl.registry import by_name
from dagl.runtime.backends import tolerance_for
from dagl.runtime.compare import ENGINE_VS_ONNX


@pytest.mark.slow
def test_export_returns_the_paths_it_wrote(tmp_path):
    out = tmp_path / "out"
    seen: list[WeightsInfo] = []
    result = export("jpeg", "random", output_dir=out, engine=False, on_weights=seen.append)
    assert isinstance(result, ExportResult) and seen == [result.weights] and result.weights.random
    assert result.graphs == {"fp32": out / "dagl-jpeg.onnx"}
    assert result.engine is None and result.sidecar is None and result.engine_unavailable is None
    assert result.manifest == out / "dagl-jpeg.json"
    assert result.files == [out / "dagl-jpeg.onnx", out / "dagl-jpeg.json"]
    assert sorted(out.iterdir()) == sorted(result.files)  # every file it wrote, and nothing else
    manifest = json.loads(result.manifest.read_text())
    assert manifest["files"] == ["dagl-jpeg.onnx", "dagl-jpeg.json"] and manifest["engine"] == "skipped (--onnx-only)"
    props = {p.key: p.value for p in onnx.load(str(result.graphs["fp32"])).metadata_props}
    assert props["dagl.precision"] == "fp32" and props["dagl.weights"].startswith("RANDOM")


class _DataDependent(torch.nn.Module):
    """Exports to a graph with NonZero: what the static TensorRT check must refuse."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.nonzero(x > 0.5).shape[0] * 0.0


def test_a_refused_graph_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(dagl.export.pipeline, "load_chosen_weights", lambda task, weights, sigma: (
        _DataDependent(), WeightsInfo(source="test", sha256=None, random=False)))
    with pytest.raises(GraphRefusedError, match=r"float32 graph refused, nothing written: .*\(NonZero\)"):
        export("jpeg", "whatever", output_dir=tmp_path, engine=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, error, message", [
    ({"precision": "int4"}, PrecisionError, "unknown precision 'int4'; choose one of: fp32, fp16, bf16, int8"),
    ({"precision": "bf16"}, PrecisionError, r"^bf16 is not a graph of its own: it runs the float32 graph \(export "
                                            r"--precision fp32\) on a backend that computes in bfloat16 \(dagl-infer "
                                            r"--precision bf16\)$"),
    ({"engine": False, "engine_required": True}, ExportOptionError, "contradict each other"),
    ({"min_tile": (64, 64), "opt_tile": (32, 32)}, ExportOptionError, "min <= opt <= max"),
    ({"weights": "missing.pt"}, dagl.WeightsError, "weights file not found"),
])
def test_refusals_come_before_any_file(tmp_path, options, error, message):
    out = tmp_path / "out"
    with pytest.raises(error, match=message):
        export("jpeg", **{"weights": "random", **options}, output_dir=out)
    assert not out.exists()


# --- precisions: one entry each ------------------------------------------------------------------

def _qdq_graph() -> onnx.ModelProto:
    """float32 -> QuantizeLinear -> DequantizeLinear -> float32: what an INT8 (Q/DQ) graph is made of."""
    scale, zero = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.02]), helper.make_tensor(
        "zero", TensorProto.INT8, [], [0])
    nodes = [helper.make_node("QuantizeLinear", ["input", "scale", "zero"], ["q"], name="quant"),
             helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["output"], name="dequant")]
    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 1, "H", "W"]) for name in ("input", "output")]
    graph = helper.make_graph(nodes, "g", io[:1], io[1:], initializer=[scale, zero])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_qdq_nodes_pass_only_for_a_precision_whose_entry_allows_them():
    model = _qdq_graph()
    for entry in PRECISIONS.values():  # float32, FP16 and bfloat16 graphs hold no Q/DQ node
        if entry is not INT8:
            assert [p.reason for p in check_tensorrt_compatible(model, entry.operators)] == [
                "operator not in the TensorRT 11 support list"] * 2
    assert check_tensorrt_compatible(model, INT8.operators) == []
    assert "QuantizeLinear" not in FP32.operators  # the entry adds to its own table only


def test_every_graph_precision_has_a_tolerance_on_every_graph_backend():
    for entry in GRAPH_PRECISIONS.values():
        for backend in ("onnxruntime", "tensorrt"):
            tolerance = tolerance_for(backend, entry.name)
            assert (tolerance.max_abs, tolerance.min_psnr) == (entry.max_abs, entry.min_psnr)
        assert ENGINE_VS_ONNX[entry.name].min_psnr == entry.engine_vs_onnx_psnr
    assert set(ENGINE_VS_ONNX) == set(GRAPH_PRECISIONS) == {"fp32", "fp16", "int8"}  # no bfloat16 engine
    assert (FP32.max_abs, FP16.min_psnr, ENGINE_VS_ONNX["fp32"].min_psnr) == (1e-4, 50.0, 60.0)


def test_a_precision_registry_refuses_a_second_entry_of_one_name():
    copy = Precision("fp16", "FP16 again", "-fp16b", make=None, making="", max_abs=None, min_psnr=40.0,
                     engine_vs_onnx_psnr=None)
    with pytest.raises(ValueError, match="^precision 'fp16' is registered twice$"):
        by_name((FP32, FP16, copy), "precision")
    assert list(by_name((FP32, FP16), "precision")) == ["fp32", "fp16"]


def test_a_run_time_precision_has_no_file_and_no_metadata_value(tmp_path):
    from dagl.artefact import check_declared, engine_name, onnx_name

    assert (BF16.graph, BF16.compute, FP16.graph) == ("fp32", "bf16", "fp16")
    assert set(PRECISIONS) - set(GRAPH_PRECISIONS) == {"bf16"}
    with pytest.raises(PrecisionError, match="bf16 is not a graph of its own"):
        onnx_name("jpeg", None, "bf16")
    with pytest.raises(PrecisionError, match="bf16 is not a graph of its own"):
        engine_name("jpeg", None, "bf16")
    with pytest.raises(MetadataError, match=r"precision = 'bf16' is not one of fp32, fp16, int8"):
        check_declared({"task": "jpeg", "channels": "1", "precision": "bf16"}, "m.onnx")


# --- a ranges file from dagl-calibrate --------------------------------------------------------------

@pytest.mark.slow
def test_a_ranges_file_keeps_its_modules_float32_in_the_fp16_graph(tmp_path):
    ranges = tmp_path / "mine.json"
    ranges.write_text(json.dumps({"tasks": {"jpeg": {"keep_fp32_modules": ["tail.0"]}}}))
    result = export("jpeg", "random", precision="fp16", output_dir=tmp_path / "out", engine=False, fp16_ranges=ranges)
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(result.graphs["fp16"]))).graph
    types = {value.name: value.type.tensor_type.elem_type for value in [*graph.value_info, *graph.output]}
    convs = {node.name: types[node.output[0]] for node in graph.node if node.op_type == "Conv"}
    tail = {name: dtype for name, dtype in convs.items() if name.startswith("/tail/tail.0/")}
    assert len(tail) == 1 and set(tail.values()) == {TensorProto.FLOAT}  # the module the file names
    assert TensorProto.FLOAT16 in {dtype for name, dtype in convs.items() if name not in tail}  # the rest: FP16
    assert json.loads(result.manifest.read_text())["fp16_policy"] == "mine.json"


@pytest.mark.parametrize("content, message", [
    ("{\"tasks\": {\"denoise\": {}}}", "has no record for task 'jpeg'; make one with dagl-calibrate --task jpeg"),
    ("{\"tasks\": {\"jpeg\": {\"keep_fp32_modules\": \"tail.0\"}}}", "not a ranges file"),
    ("[" * 100_000, "not a readable ranges file"),
    ("\xff", "not a readable ranges file"),
    (None, "no such ranges file; make one with dagl-calibrate --task jpeg"),
])
def test_a_bad_ranges_file_is_refused_before_any_file(tmp_path, content, message):
    from dagl.calibration.policy import RangesError

    ranges, out = tmp_path / "r.json", tmp_path / "out"
    if content is not None:
        ranges.write_bytes(content.encode("latin-1"))
    with pytest.raises(RangesError, match=message):
        export("jpeg", "random", precision="fp16", output_dir=out, engine=False, fp16_ranges=ranges)
    assert not out.exists()
