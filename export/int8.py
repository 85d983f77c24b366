"""The INT8 graph maker of the precision registry: the float32 graph quantized to Q/DQ, calibrated on held-out
training crops (``calibration/int8.py``), the FP16 policy's float32 nodes and every GFAM head left float;
and ``python -m dagl.export.int8 --task jpeg``, which records that calibration for the shipped weights."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import onnx

from dagl.artefact import METADATA_PREFIX
from dagl.calibration.int8 import (METHOD, QUANTIZED_OPS, RECORD_FILE, activation_ranges, calibration_batches,
                                   float_nodes, quantize)
from dagl.errors import DaglError, UserInputError
from dagl.tasks.configs import get_config


class CalibrationDataError(UserInputError):
    """No held-out training images to calibrate INT8 on."""


def _batches(task: str, sigma: int | None) -> list:
    try:
        return calibration_batches(task, sigma)[0]
    except DaglError as exc:
        raise CalibrationDataError(f"INT8 calibration reads the held-out training images ($DAGL_DATASETS/train/"
                                   f"bsd400): {exc}") from None


def check_calibration_data(task: str, sigma: int | None) -> None:
    """The INT8 entry's ``check``: the calibration crops can be read (a second or less), before any export work."""
    _batches(task, sigma)


def to_qdq(model: onnx.ModelProto, keep_fp32: set[str]) -> onnx.ModelProto:
    """``model`` (labelled with its ``dagl.task``/``dagl.sigma``) as an INT8 Q/DQ graph, ``keep_fp32`` and the GFAM
    heads unquantized."""
    props = {p.key: p.value for p in model.metadata_props}
    task, sigma = props[METADATA_PREFIX + "task"], props.get(METADATA_PREFIX + "sigma")
    return quantize(model, keep_fp32 | float_nodes(model.graph),
                    _batches(task, int(sigma) if sigma not in (None, "", "null") else None))


def main(argv: Sequence[str] | None = None) -> None:
    """Quantize the shipped weights' graph for ``--task`` and write the record (data, method, ranges)."""
    import dagl
    from dagl.calibration.policy import fp32_nodes

    from .onnx import export_onnx

    parser = argparse.ArgumentParser(prog="python -m dagl.export.int8")
    parser.add_argument("--task", required=True)
    parser.add_argument("--sigma", type=int)
    parser.add_argument("--data", type=Path, help="training folder holding the held-out files")
    args = parser.parse_args(argv)
    config = get_config(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        graph = onnx.load(str(export_onnx(dagl.load(args.task, sigma=args.sigma), Path(tmp) / "m.onnx",
                                          channels=config.channels)))
    keep = fp32_nodes(graph.graph, args.task) | float_nodes(graph.graph)
    batches, data = calibration_batches(args.task, args.sigma, args.data)
    quantized = quantize(graph, keep, batches)
    record = json.loads(RECORD_FILE.read_text()) if RECORD_FILE.is_file() else {"tasks": {}}
    record["method"] = (f"onnxruntime.quantization.quantize_static, QDQ, {METHOD} calibration, int8 symmetric "
                        f"activations per tensor and weights per channel, ops {', '.join(QUANTIZED_OPS)}; "
                        f"every GFAM head excluded (float), with the FP16 policy's float32 nodes")
    record["tasks"][config.name if args.sigma is None else f"{config.name}-s{args.sigma}"] = {
        "weights": "shipped", "data": data, "crops": len(batches), "float_nodes": len(keep),
        "ranges": activation_ranges(quantized)}
    RECORD_FILE.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORD_FILE}: {len(record['tasks'])} task(s)")


if __name__ == "__main__":
    main()
