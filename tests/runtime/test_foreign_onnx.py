"""A foreign ONNX graph is checked before its first run: interface (names, float32, dynamic N/H/W)
and operators (the table dagl-export checks its own graphs against); refusals are one line, exit 2."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from dagl.artefact.operators import PROJECT_REFUSED, SUPPORTED_TYPES, operator_refusal
from runtime.base import ModelInputError
from runtime.restorer import Restorer

PROPS = {"dagl.task": "jpeg", "dagl.channels": "1", "dagl.precision": "fp32", "dagl.weights": "0" * 64}


def _save(path, nodes, in_dims=("N", 1, "H", "W"), out_dims=("N", 1, "H", "W"), initializers=()):
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_dims)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_dims)],
                              initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, PROPS)
    onnx.save(model, str(path))
    return path


def _endless_loop(path):
    """A Loop whose condition stays true and has no trip count: ONNX Runtime would spin forever."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["x_in"], ["x_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("x_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_out", TensorProto.FLOAT, None)])
    true = helper.make_tensor("true", TensorProto.BOOL, [], [True])
    return _save(path, [helper.make_node("Loop", ["", "true", "input"], ["output"], body=body)], initializers=[true])


IDENTITY = [helper.make_node("Identity", ["input"], ["output"])]
CASES = {
    "static size": (lambda p: _save(p, IDENTITY, (1, 1, 64, 64), (1, 1, 64, 64)), "with a static N/H/W"),
    "static batch": (lambda p: _save(p, IDENTITY, (4, 1, "H", "W"), (4, 1, "H", "W")), "with a static N;"),
    "endless loop": (_endless_loop, "(Loop): control flow"),
    "custom op": (lambda p: _save(p, [helper.make_node("Mystery", ["input"], ["output"], domain="com.x")]),
                  "(Mystery): custom domain 'com.x' needs a plugin"),
    "unknown op": (lambda p: _save(p, [helper.make_node("Hardmax", ["input"], ["output"])]),
                   "(Hardmax): operator not in the TensorRT 11 support list"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_foreign_graph_is_refused_before_any_run(tmp_path, case):
    make, message = CASES[case]
    path = make(tmp_path / "foreign.onnx")
    with pytest.raises(ModelInputError) as excinfo:
        Restorer(path, tile=16, overlap=4, batch=4)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_dagl_infer_refuses_an_endless_loop_in_one_line(tmp_path, capsys):
    from PIL import Image

    from runtime.cli import main

    model = _endless_loop(tmp_path / "loop.onnx")
    Image.new("L", (32, 32)).save(tmp_path / "in.png")
    assert main.run([str(model), str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "dagl-infer: error: loop.onnx: node 'output' (Loop): control flow (engine would loop on the host side); "
        "dagl runs only graphs made of the operators dagl-export writes"]
    assert not (tmp_path / "out.png").exists()


def test_one_table_for_export_and_runtime():
    from dagl.export import trt_check

    assert trt_check.SUPPORTED_TYPES is SUPPORTED_TYPES and trt_check.PROJECT_REFUSED is PROJECT_REFUSED
    assert operator_refusal("Conv") is None and operator_refusal("Loop") == PROJECT_REFUSED["Loop"]
