"""INT8 by calibration: a Q/DQ graph from onnxruntime.quantization, calibrated on held-out training crops only,
every GFAM head left float, run by ONNX Runtime and OpenVINO within the INT8 bound."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import dagl
from dagl.artefact.precision import INT8
from dagl.calibration.int8 import activation_ranges, calibration_batches, float_nodes, quantize
from dagl.calibration.policy import fp32_nodes
from dagl.images.io import write_image
from dagl.runtime import create_runner
from dagl.runtime.backends import tolerance_for
from dagl.runtime.compare import compare
from dagl.train.heldout import HELD_OUT_FILES


def two_convs() -> onnx.ModelProto:
    """input -> Conv "first" -> Conv "second" -> output: 3x3 convolutions with fixed weights."""
    rng = np.random.default_rng(3)
    weights = [numpy_helper.from_array(rng.normal(0, 0.3, (1, 1, 3, 3)).astype(np.float32), f"w{i}") for i in (1, 2)]
    nodes = [helper.make_node("Conv", ["input", "w1"], ["mid"], name="first", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["mid", "w2"], ["output"], name="second", pads=[1, 1, 1, 1])]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 1, "H", "W"]) for n in ("input", "output")]
    model = helper.make_model(helper.make_graph(nodes, "g", io[:1], io[1:], initializer=weights),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_excluded_nodes_stay_float_and_the_rest_is_quantized():
    batches = [np.random.default_rng(i).random((1, 1, 16, 16), dtype=np.float32) for i in range(4)]
    model = two_convs()
    quantized = quantize(model, {"second"}, batches)
    producer = {out: node for node in quantized.graph.node for out in node.output}
    first, second = (next(n for n in quantized.graph.node if n.op_type == "Conv" and n.name.startswith(name))
                     for name in ("first", "second"))
    # The quantized Conv takes both its input and its weights through DequantizeLinear; the excluded one computes
    # in float32 with its float32 weights (its input is the first's output, which that one's Q/DQ rounds).
    assert [producer[name].op_type for name in first.input] == ["DequantizeLinear"] * 2
    assert second.input[1] == "w2" and "w2" not in producer
    assert numpy_helper.to_array(next(t for t in quantized.graph.initializer if t.name == "w2")).dtype == np.float32
    assert model.graph.initializer[0].data_location == TensorProto.DEFAULT  # the caller's graph is left as it was
    # The recorded range is the calibrated maximum: |input| <= 1, so 127 x scale is the largest sample seen.
    assert activation_ranges(quantized)["input"] == pytest.approx(max(float(b.max()) for b in batches), rel=1e-6)


def test_int8_leaves_every_gfam_head_and_the_ends_float_and_nothing_else(jpeg_onnx):
    graph = onnx.load(str(jpeg_onnx)).graph
    kept = float_nodes(graph)
    heads = {name for name in kept if name.startswith("/body/body.8/")}
    assert {name.split("/")[3] for name in heads} == {f"c{stage}_{head}" for stage in (1, 2, 3) for head in (1, 2, 3, 4)}
    # Each head's embeddings, patch extraction, aggregation and col2im are in, with the FP16 policy's attention path.
    for op in ("g/Conv", "theta/Conv", "Conv_2", "MatMul_1", "ConvTranspose", "Softmax"):
        assert "/body/body.8/c2_3/" + op in kept
    assert fp32_nodes(graph, "jpeg", {"tasks": {}}) <= kept
    convs = {node.name for node in graph.node if node.op_type == "Conv"}
    assert {"/head/head.0/Conv", "/body/body.17/Conv", "/tail/tail.0/Conv"} <= kept
    # The ResBlocks (main body and GFAM stage) and the stage's merges are quantized.
    quantized = convs - kept
    assert len(quantized) == 2 * 16 + 2 * 8 + 3
    assert {"/body/body.8/RBS1/RBS1.0/body/body.0/Conv", "/body/body.8/c1_c/Conv",
            "/body/body.0/body/body.0/Conv"} <= quantized


def test_calibration_reads_only_the_held_out_training_files(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    held_out = sorted(HELD_OUT_FILES)[:2]
    rng = np.random.default_rng(0)
    for name in held_out:
        write_image(folder / name, rng.random((60, 60), dtype=np.float32), 8)
    (folder / "test_002.png").write_bytes(b"not an image: reading it would fail")  # a training file, not held out
    batches, data = calibration_batches("jpeg", None, folder, crop=32, images=8)
    assert len(batches) == 2 * 4 and batches[0].shape == (1, 1, 32, 32)  # every CAR quality of each
    assert data == ["train: 2 held-out images, centred 32x32, q10, q20, q30, q40"]


@pytest.mark.slow
def test_exported_int8_graph_runs_on_onnx_runtime_and_openvino_within_its_bound(tmp_path):
    pytest.importorskip("openvino")
    from dagl.export import export

    # Trained weights, whose activations the bound is for (docs/int8.md). With random ones OpenVINO's INT8 kernels
    # depend on the CPU: 15.7 dB against float32 on an AMD EPYC without AMX (AVX512-VNNI), above the bound on a
    # Xeon with AMX (ONNX Runtime: 36.9 dB on the AMD); the shipped weights give 54.7 dB there.
    result = export("jpeg", dagl.shipped_weights("jpeg"), precision="int8", output_dir=tmp_path, engine=False)
    graph = onnx.load(str(result.graphs["int8"]))
    assert sum(node.op_type == "QuantizeLinear" for node in graph.graph.node) > 100
    # No quantized tensor enters a GFAM head: every DequantizeLinear feeds the convolutions outside them.
    dequantized = {node.output[0] for node in graph.graph.node if node.op_type == "DequantizeLinear"}
    inside = [node.name for node in graph.graph.node if node.name.startswith("/body/body.8/c") and
              "_c/" not in node.name and dequantized & set(node.input)]
    assert inside == []
    crop = calibration_batches("jpeg", None, images=1)[0][0]
    with create_runner(result.graphs["fp32"], "onnxruntime", threads=1) as runner:
        baseline = runner.infer(crop)
    for backend in ("onnxruntime", "openvino"):
        with create_runner(result.graphs["int8"], backend, threads=1, engine_cache=tmp_path / "c") as runner:
            assert runner.info.precision == "int8"
            verdict = compare(baseline, runner.infer(crop), tolerance_for(backend, "int8"))
        assert verdict, verdict.summary
        assert verdict.max_abs > 1e-3  # really quantized
    assert INT8.min_psnr == 25.0


def test_export_without_calibration_images_is_one_line_before_the_weights_load(tmp_path, monkeypatch):
    import dagl.export.pipeline
    from dagl.export.int8 import CalibrationDataError

    monkeypatch.setenv("DAGL_DATASETS", str(tmp_path / "nowhere"))
    monkeypatch.setattr(dagl.export.pipeline, "load_chosen_weights",
                        lambda *args: pytest.fail("weights loaded before the refusal"))
    out = tmp_path / "out"
    with pytest.raises(CalibrationDataError, match=r"^INT8 calibration reads the held-out training images "
                                                   r"\(\$DAGL_DATASETS/train/bsd400\): data folder not found: ") as err:
        dagl.export.pipeline.export("jpeg", "random", precision="int8", output_dir=out, engine=False)
    assert err.value.exit_code == 2 and not out.exists()
