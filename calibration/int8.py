"""INT8 post-training quantization of an exported float32 graph to an explicitly quantized (Q/DQ) graph.

Static quantization by ``onnxruntime.quantization`` (a maintained quantizer, not a hand-written one) in
the QDQ format, the form a strongly typed TensorRT network builds as it is: weights int8 per output
channel, activations int8 per tensor, both symmetric (zero point 0, as TensorRT requires). The ranges
are calibrated (MinMax) on centred crops of the held-out training images (``dagl/train/heldout.py``:
training files never trained on, degraded as validation degrades them), never on a paper test set.

Every GFAM head stays float whole, not only the similarity, mask and softmax the FP16 policy keeps
(:func:`dagl.calibration.policy.fp32_nodes`), and so do the first and last convolutions (:func:`float_nodes`):
with only the attention path float, INT8 cost the shipped jpeg weights 0.13 dB on held-out crops, against
0.02 dB so (``tools/int8_study.py``, docs/int8.md). INT8 covers the convolutions of the ResBlocks and of the
GFAM stage's merges.

``python -m dagl.export.int8 --task jpeg`` quantizes the shipped weights' graph and records the calibration
(data, method, ranges) in ``int8_calibration.json`` beside this module (:data:`RECORD_FILE`).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from dagl.artefact import INPUT_NAME

from .samples import held_out_crops

RECORD_FILE = Path(__file__).with_name("int8_calibration.json")
#: Side of the centred calibration crops, and how many held-out images give them (every CAR quality each).
CROP, IMAGES = 48, 8
#: Operators whose inputs and weights are quantized; everything else (GFAM's attention path included) runs float.
QUANTIZED_OPS = ("Conv", "MatMul", "ConvTranspose")
METHOD = "MinMax"


def calibration_batches(task: str, sigma: int | None, data: Path | None = None, crop: int = CROP,
                        images: int = IMAGES) -> tuple[list[np.ndarray], list[str]]:
    """(1, C, crop, crop) degraded crops of the held-out training images of ``data``, and what they are."""
    batches, description = held_out_crops(task, sigma, data, crop, images)
    return batches, [description]


#: The exporter's scopes of the convolutions that read the image (``head``) and write the correction added to it
#: (the body's last convolution and ``tail``): in int8 they cost 0.014 dB more on held-out crops, for 3 of 186.
ENDS = ("/head/", "/body/body.17/", "/tail/")


def float_nodes(graph: onnx.GraphProto) -> set[str]:
    """The nodes INT8 leaves float: every node of every GFAM head (the exporter's scope of each head's Softmax,
    ``/body/body.8/c1_1/``) and of the network's :data:`ENDS`."""
    heads = {node.name.rsplit("/", 1)[0] + "/" for node in graph.node if node.op_type == "Softmax"} - {"/"}
    scopes = (*sorted(heads), *ENDS)
    return {node.name for node in graph.node if node.name.startswith(scopes)}


def _reader(batches: Sequence[np.ndarray]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    return Reader()


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization advises pre-processing on the root logger at WARNING: not the user's business."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize(model: onnx.ModelProto, keep_float: set[str], batches: Sequence[np.ndarray], method: str = METHOD,
             options: Mapping[str, object] | None = None) -> onnx.ModelProto:
    """The Q/DQ graph of ``model`` calibrated on ``batches``, the ``keep_float`` nodes left unquantized.

    ``method`` names an ``onnxruntime.quantization.CalibrationMethod``; ``options`` add to ``quantize_static``'s
    ``extra_options`` (a percentile, tensor overrides: what ``tools/int8_study.py`` compares).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False, **(options or {})}

    with tempfile.TemporaryDirectory(prefix="dagl-int8-") as tmp, _quiet_root_logger():
        # A path, not the proto: given a ModelProto, quantize_static moves its weights to external data files
        # in its own temporary folder, leaving the caller's graph pointing at files that are gone.
        source, out = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(source))
        quantize_static(source, out, _reader(batches), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=sorted(keep_float), calibrate_method=getattr(CalibrationMethod, method),
                        extra_options=extra)
        quantized = onnx.load(str(out))
    del quantized.metadata_props[:]  # the exporter labels the graph it returns
    return quantized


def activation_ranges(model: onnx.ModelProto) -> dict[str, float]:
    """Tensor -> the largest magnitude its int8 scale represents (127 x scale), for each quantized activation."""
    initial = {t.name: t for t in model.graph.initializer}
    ranges = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in initial and node.input[0] not in initial:
            scale = onnx.numpy_helper.to_array(initial[node.input[1]])
            if scale.size == 1:
                ranges[node.input[0]] = float(127 * scale.reshape(()))
    return ranges
