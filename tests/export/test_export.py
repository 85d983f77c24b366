"""dagl-export end to end on CPU: the exported graphs, their parity with PyTorch, the FP16 policy.

Each task is exported once per session through the real CLI (official-format random-weight
checkpoints); the float32 graph is compared with the PyTorch model on real test-set crops of odd
and even sizes, the FP16 graph with float32 PyTorch by PSNR.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

import dagl
from dagl.calibration.policy import attention_path_nodes, float32_attention, fp32_nodes, module_scope
from dagl.calibration.ranges import RangeTracker, track
from sample_crops import task_crops
from dagl.export.cli import main
from dagl.export.trt_check import check_tensorrt_compatible
from dagl.files import file_digest
from dagl.network.gfam import BatchedGFAM
from dagl.runtime.backends import tolerance_for
from dagl.runtime.compare import compare, worst

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
#: Ops that would break the dynamic-shape, parser-only guarantee of the graph.
FORBIDDEN_OPS = {"Col2Im", "Im2Col", "Loop", "If", "NonZero", "Scan", "Unique", "Compress"}
PARITY_SHAPES = {"jpeg": [(37, 53), (64, 64), (45, 71)], "demosaic": [(37, 53), (64, 48)]}
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export(task: str, checkpoint: Path, out: Path, *extra: str):
    result = CliRunner().invoke(main, ["--task", task, "--weights", str(checkpoint), "--output-dir", str(out),
                                       *extra])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="session")
def jpeg_export(official_checkpoint, tmp_path_factory):
    """``dagl-export --task jpeg --weights CKPT --onnx-only --precision fp16`` once per session."""
    checkpoint = official_checkpoint("jpeg")
    out = tmp_path_factory.mktemp("export-jpeg")
    _export("jpeg", checkpoint, out, "--onnx-only", "--precision", "fp16")
    return out, dagl.load("jpeg", weights=checkpoint)


@pytest.fixture(scope="session")
def demosaic_export(official_checkpoint, tmp_path_factory):
    """``dagl-export --task demosaic --weights CKPT`` (engine asked for: exercises the no-TensorRT path)."""
    checkpoint = official_checkpoint("demosaic")
    out = tmp_path_factory.mktemp("export-demosaic")
    result = _export("demosaic", checkpoint, out)
    return out, dagl.load("demosaic", weights=checkpoint), result


def _crops(task: str, datasets_dir: Path, shape: tuple[int, int], count: int = 1) -> np.ndarray:
    return np.stack([crop for _, crop in task_crops(task, datasets_dir, shape=shape, count=count)])


def _torch(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


# --- the graphs -------------------------------------------------------------------------------

@pytest.mark.slow
def test_written_files_and_summary(jpeg_export):
    out, _ = jpeg_export
    summary = json.loads((out / "dagl-jpeg.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["dagl-jpeg-fp16.onnx", "dagl-jpeg.json", "dagl-jpeg.onnx"]
    assert summary["files"] == ["dagl-jpeg.onnx", "dagl-jpeg-fp16.onnx", "dagl-jpeg.json"]
    assert summary["weights"]["random"] is False
    assert summary["weights"]["sha256"] == file_digest(summary["weights"]["source"])
    assert summary["channels"] == 1 and summary["opset"] == 17 and summary["precision"] == "fp16"
    assert summary["shapes"] == {"min": [1, 1, 16, 16], "opt": [4, 1, 80, 80], "max": [4, 1, 256, 256]}
    assert summary["versions"]["onnx"] == onnx.__version__


@pytest.mark.parametrize("name, precision", [("dagl-jpeg.onnx", "fp32"), ("dagl-jpeg-fp16.onnx", "fp16")])
def test_graph_is_dynamic_parser_only_and_labelled(jpeg_export, name, precision):
    model = onnx.load(str(jpeg_export[0] / name))
    onnx.checker.check_model(model)
    assert check_tensorrt_compatible(model) == []
    assert not FORBIDDEN_OPS & {node.op_type for node in model.graph.node}
    props = {p.key: p.value for p in model.metadata_props}
    assert props["dagl.task"] == "jpeg" and props["dagl.channels"] == "1" and props["dagl.precision"] == precision
    assert "dagl.sigma" not in props
    for value in (model.graph.input[0], model.graph.output[0]):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 I/O for both graphs
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param for d in dims] == ["N", "", "H", "W"] and dims[1].dim_value == 1
    assert [v.name for v in model.graph.input] == ["input"] and [v.name for v in model.graph.output] == ["output"]


def test_fp16_graph_runs_attention_in_float32(jpeg_export):
    """Every Softmax (and the score MatMul feeding it) computes in float32; the convs in FP16."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(jpeg_export[0] / "dagl-jpeg-fp16.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert len(softmaxes) == 12  # 3 stages x 4 heads
    assert all(types[n.input[0]] == onnx.TensorProto.FLOAT for n in softmaxes)
    path = attention_path_nodes(onnx.load(str(jpeg_export[0] / "dagl-jpeg.onnx")).graph)
    on_path = [n for n in model.graph.node if n.name in path]
    assert sum(n.op_type == "MatMul" for n in on_path) == 12  # the score MatMuls
    float_outputs = [types[n.output[0]] for n in on_path if types.get(n.output[0]) in FLOAT_TYPES]
    assert len(float_outputs) > 100 and set(float_outputs) == {onnx.TensorProto.FLOAT}
    resblock_conv = next(n for n in model.graph.node if n.name == "/body/body.0/body/body.0/Conv")
    assert types[resblock_conv.output[0]] == onnx.TensorProto.FLOAT16


def test_module_scope_names_real_nodes(jpeg_export):
    """A module flagged by calibration maps onto exactly its own nodes of the exported graph."""
    graph = onnx.load(str(jpeg_export[0] / "dagl-jpeg.onnx")).graph
    ranges = {"tasks": {"jpeg": {"keep_fp32_modules": ["body.0.body.0", "body.8.c2_3.g"]}}}
    extra = fp32_nodes(graph, "jpeg", ranges) - fp32_nodes(graph, "jpeg", {"tasks": {}})
    assert module_scope("body.8.c2_3.g") == "/body/body.8/c2_3/g/"
    assert extra == {"/body/body.0/body/body.0/Conv", "/body/body.8/c2_3/g/Conv"}


# --- parity -----------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("shape", PARITY_SHAPES["jpeg"], ids=lambda s: f"{s[0]}x{s[1]}")
def test_jpeg_float32_parity(jpeg_export, datasets_dir, shape):
    out, model = jpeg_export
    x = _crops("jpeg", datasets_dir, shape)
    verdict = compare(_torch(model, x), _session(out / "dagl-jpeg.onnx").run(None, {"input": x})[0], tolerance_for("onnxruntime", "fp32"))
    assert verdict.passed, verdict.summary


@pytest.mark.slow
def test_jpeg_float32_parity_batch_of_two(jpeg_export, datasets_dir):
    """Dynamic N: two different crops in one call match PyTorch sample by sample."""
    out, model = jpeg_export
    x = _crops("jpeg", datasets_dir, (37, 53), count=2)
    y = _session(out / "dagl-jpeg.onnx").run(None, {"input": x})[0]
    verdict = compare(_torch(model, x), y, tolerance_for("onnxruntime", "fp32"))
    assert y.shape == x.shape and verdict.passed, verdict.summary
    assert np.abs(y[0] - y[1]).max() > 1e-3  # two different images, not one broadcast


@pytest.mark.slow
@pytest.mark.parametrize("shape", PARITY_SHAPES["demosaic"], ids=lambda s: f"{s[0]}x{s[1]}")
def test_demosaic_float32_parity(demosaic_export, datasets_dir, shape):
    out, model, _ = demosaic_export
    x = _crops("demosaic", datasets_dir, shape)
    verdict = compare(_torch(model, x), _session(out / "dagl-demosaic.onnx").run(None, {"input": x})[0], tolerance_for("onnxruntime", "fp32"))
    assert verdict.passed, verdict.summary


@pytest.mark.slow
def test_jpeg_fp16_psnr_against_float32_torch(jpeg_export, datasets_dir, record_property, capsys):
    """FP16 weights and activations between nodes; ORT CPU upcasts inside some nodes (see docs)."""
    out, model = jpeg_export
    session = _session(out / "dagl-jpeg-fp16.onnx")
    verdicts = []
    for shape in PARITY_SHAPES["jpeg"][:2]:
        x = _crops("jpeg", datasets_dir, shape)
        verdicts.append(compare(np.clip(_torch(model, x), 0, 1), session.run(None, {"input": x})[0], tolerance_for("onnxruntime", "fp16")))
    record_property("fp16_psnr_db", [v.psnr for v in verdicts])
    with capsys.disabled():
        print(f"\nFP16 ONNX vs float32 PyTorch (jpeg, real crops): PSNR {', '.join(f'{v.psnr:.1f}' for v in verdicts)} dB")
    verdict = worst(verdicts)
    assert verdict.passed, verdict.summary


# --- the FP16 policy prevents a real overflow -------------------------------------------------

def test_fp32_attention_survives_similarities_that_overflow_fp16():
    """Patch embeddings scaled up until the logits pass 65504: true FP16 gives NaN, the policy does not.

    Run in PyTorch FP16 on purpose: ONNX Runtime's CPU provider upcasts FP16 nodes internally and
    would hide the overflow (the FP16 graph's float32 attention is checked by type above).
    """
    torch.manual_seed(0)
    head = BatchedGFAM(in_channels=64).eval()
    with torch.no_grad():
        for fc in (head.fc1, head.fc2):
            fc[0].weight.mul_(10.0)
            fc[0].bias.abs_()
    x = torch.rand(1, 64, 24, 20)
    tracker = RangeTracker()
    with torch.no_grad(), track(head, tracker):
        float32_out = head(x)
    assert tracker.summary()[".logits"]["absmax"] > 65504  # the threat is real for these weights
    half = head.half()
    with torch.no_grad():
        naive = half(x.half()).float()
        with float32_attention(half):
            guarded = half(x.half()).float()
    assert not torch.isfinite(naive).all()
    assert torch.isfinite(guarded).all()
    assert (guarded - float32_out).abs().max() <= 1e-2 * float32_out.abs().max()


# --- no TensorRT here ---------------------------------------------------------------------------

@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed: the no-TensorRT path cannot be exercised")
def test_without_tensorrt_onnx_is_kept_one_line_exit_zero(demosaic_export):
    out, _, result = demosaic_export
    notes = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and notes[0].startswith("no TensorRT engine built: tensorrt is not installed")
    assert sorted(p.name for p in out.iterdir()) == ["dagl-demosaic.json", "dagl-demosaic.onnx"]
    summary = json.loads((out / "dagl-demosaic.json").read_text())
    assert summary["engine"].startswith("not built") and summary["precision"] == "fp32"


@pytest.mark.slow
def test_random_weights_are_labelled_everywhere(tmp_path):
    """The README's first command: loud on stderr, marked in the ONNX and in the summary."""
    result = CliRunner().invoke(main, ["--task", "jpeg", "--weights", "random", "--onnx-only",
                                       "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("WARNING: --weights random: seeded random weights (seed 0)")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "dagl-jpeg.onnx")).metadata_props}
    assert props["dagl.weights"].startswith("RANDOM")
    summary = json.loads((tmp_path / "dagl-jpeg.json").read_text())
    assert summary["weights"] == {"source": "random", "sha256": None, "random": True, "seed": 0}
    assert summary["engine"] == "skipped (--onnx-only)"
