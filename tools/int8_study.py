"""Which INT8 graph keeps the shipped jpeg weights within 0.05 dB of float32: a study on held-out training crops.

Every variant is the float32 graph quantized by ``dagl.calibration.int8.quantize`` (onnxruntime.quantization,
Q/DQ, symmetric) with one change: which nodes stay float, the calibration method, the calibration crops. Each
is scored on the held-out split of the training folder (``dagl.train.heldout``), on images the calibration did
not read (the calibration reads the first ``--calib-images``; the score the rest), never on a paper test set.
Prints one JSON line per variant and runtime: mean PSNR against the clean crops, its cost against float32, the
PSNR against the float32 output, and the CPU seconds of the scoring.

    python tools/int8_study.py --onnx meas/dagl-jpeg.onnx --variants base,ends,ends-gfam --out meas/int8-study.jsonl
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import click
import numpy as np
import onnx

from dagl.calibration.int8 import METHOD, quantize
from dagl.calibration.policy import fp32_nodes
from dagl.calibration.samples import DEFAULT_DATA
from dagl.data.datasets import datasets_root
from dagl.runtime.benchmark import cpu_seconds
from dagl.tasks.configs import get_config
from dagl.train.heldout import HELD_OUT
from dagl.train.validation import load_validation_set



def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def _items(crop: int, first: int, count: int) -> list:
    items = load_validation_set(HELD_OUT, get_config("jpeg"), None, crop, limit=first + count,
                                data=[datasets_root() / DEFAULT_DATA])
    per_image = 4  # one item per CAR quality
    return items[first * per_image:]


def _batches(items: list) -> list[np.ndarray]:
    return [np.ascontiguousarray(i.degraded.transpose(2, 0, 1)[None], dtype=np.float32) for i in items]


def _ends(graph: onnx.GraphProto) -> set[str]:
    """The head conv (reads the image: int8 would keep 7 bits of it) and the last convs before the residual add."""
    names = {"/head/head.0/Conv", "/tail/tail.0/Conv", "/body/body.17/Conv"}
    return {n.name for n in graph.node if n.name in names}


def _gfam(graph: onnx.GraphProto) -> set[str]:
    return {n.name for n in graph.node if n.name.startswith("/body/body.8/")}


def _keep(variant: str, graph: onnx.GraphProto) -> set[str]:
    keep = fp32_nodes(graph, "jpeg")
    parts = variant.split("+")[0].split("-")
    if "ends" in parts:
        keep |= _ends(graph)
    if "gfam" in parts:
        keep |= _gfam(graph)
    if "head" in parts:
        keep |= {"/head/head.0/Conv"}
    if "heads" in parts:  # every GFAM head (not the stage's ResBlocks)
        keep |= {n for n in _gfam(graph) if re.match(r"/body/body.8/c\d_\d/", n)}
    if "agg" in parts:  # the heads' aggregation: softmax x patches, and the fold back to an image
        keep |= {n for n in _gfam(graph) if re.search(r"/c\d_\d/(MatMul_1|ConvTranspose)", n)}
    if "mm" in parts:  # the aggregation matmul alone
        keep |= {n for n in _gfam(graph) if re.search(r"/c\d_\d/MatMul_1$", n)}
    if "unf" in parts:  # the heads' patch extractions (unfold as convolutions)
        keep |= {n for n in _gfam(graph) if re.search(r"/c\d_\d/Conv(_\d)?$", n)}
    if "gt" in parts:  # the heads' g and theta embeddings
        keep |= {n for n in _gfam(graph) if re.search(r"/c\d_\d/(g|theta)/", n)}
    for stage in ("s1", "s2", "s3"):  # one stage's four heads
        if stage in parts:
            keep |= {n for n in _gfam(graph) if re.match(rf"/body/body.8/c{stage[1]}_\d/", n)}
    if "rbs" in parts:  # the stage's ResBlocks
        keep |= {n for n in _gfam(graph) if "/RBS" in n}
    return keep


def _compiled(model: onnx.ModelProto | str, compute: str):
    import openvino as ov
    core = ov.Core()
    src = core.read_model(model) if isinstance(model, str) else core.read_model(model.SerializeToString(), b"")
    return core.compile_model(src, "CPU", {"INFERENCE_PRECISION_HINT": compute, "INFERENCE_NUM_THREADS": "1",
                                           "PERFORMANCE_HINT": "LATENCY"})


def _time(model: onnx.ModelProto | str, compute: str, tile: int, batch: int, repeats: int = 3) -> float:
    """Median CPU seconds of one OpenVINO call on a (batch, 1, tile, tile) input, after one warm-up call."""
    request = _compiled(model, compute).create_infer_request()
    data = np.random.default_rng(0).random((batch, 1, tile, tile), dtype=np.float32)
    request.infer({0: data})
    times = []
    for _ in range(repeats):
        start = cpu_seconds()
        request.infer({0: data})
        times.append(cpu_seconds() - start)
    return float(np.median(times))


def _method(options: list[str]) -> tuple[str, dict]:
    """'+pNN' Percentile NN, '+entropy' Entropy, else the library's MinMax; and the extra option it needs."""
    for option in options:
        if option.startswith("p"):
            return "Percentile", {"CalibPercentile": float(option[1:])}
        if option == "entropy":
            return "Entropy", {}
    return METHOD, {}


def _overrides(variant: str, graph: onnx.GraphProto) -> dict | None:
    """'u8': the aggregation's attention weights (softmax x mask, in [0, 1]) as uint8 with a zero point of 0;
    'u8f': the same at the fixed scale 1/255 (no calibration)."""
    from onnxruntime.quantization import QuantType

    parts = variant.split("+")[0].split("-")
    weights = [n.input[0] for n in graph.node if re.search(r"/body/body.8/c\d_\d/MatMul_1$", n.name)]
    if "u8" in parts:
        return {t: [{"quant_type": QuantType.QUInt8, "symmetric": False}] for t in weights}
    if "u8f" in parts:
        return {t: [{"quant_type": QuantType.QUInt8, "scale": np.array(1 / 255, np.float32),
                     "zero_point": np.array(0, np.uint8)}]
                for t in weights}
    return None


def _run(model: onnx.ModelProto | str, backend: str, compute: str, batches: list[np.ndarray]) -> tuple[list, float]:
    start = cpu_seconds()
    if backend == "ov":
        request = _compiled(model, compute).create_infer_request()
        outs = []
        for b in batches:
            request.infer({0: b})
            outs.append(request.get_output_tensor(0).data.copy())
    else:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        data = model if isinstance(model, str) else model.SerializeToString()
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        outs = [session.run(None, {session.get_inputs()[0].name: b})[0] for b in batches]
    return outs, cpu_seconds() - start


@click.command()
@click.option("--onnx", "onnx_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="The float32 graph of the shipped jpeg weights (dagl-export --task jpeg --onnx-only).")
@click.option("--variants", default="base,ends", show_default=True,
              help="Comma list: base (attention float), ends (+ head/tail convs float), gfam (+ all of GFAM float), "
                   "head; '+pNN' Percentile NN, '+entropy', '+c96' 96x96 calibration crops, '+i16' 16 images.")
@click.option("--runtimes", default="ov-f32", show_default=True, help="Comma list of ov-f32, ov-bf16, ort.")
@click.option("--crop", default=96, show_default=True, help="Side of the scored held-out crops.")
@click.option("--calib-images", default=8, show_default=True)
@click.option("--score-images", default=16, show_default=True)
@click.option("--time-tile", default=0, help="Also time one OpenVINO call on a tile this size (0: no).")
@click.option("--time-batch", default=4, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True)
def main(onnx_path: str, variants: str, runtimes: str, crop: int, calib_images: int, score_images: int,
         time_tile: int, time_batch: int, out: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    graph = onnx.load(onnx_path)
    items = _items(crop, calib_images, score_images)
    batches = _batches(items)
    clean = [i.clean.transpose(2, 0, 1)[None] for i in items]
    labels = [i.label for i in items]
    reference, seconds = _run(onnx_path, "ort", "f32", batches)

    def score(outs: list) -> dict:
        per = [_psnr(o, c) for o, c in zip(outs, clean)]
        by = {q: float(np.mean([p for p, lab in zip(per, labels) if lab == q])) for q in sorted(set(labels))}
        vs = float(np.mean([_psnr(o, r) for o, r in zip(outs, reference)]))
        return {"psnr": float(np.mean(per)), **by, "vs_fp32_output": vs}

    base = score(reference)
    lines = [{"variant": "float32", "runtime": "ort", "cpu_s": round(seconds, 1), **base}]
    print(json.dumps(lines[-1]), flush=True)
    if time_tile:
        for compute in ("f32", "bf16"):
            lines.append({"variant": "float32", "runtime": f"ov-{compute}", "tile": time_tile, "batch": time_batch,
                          "call_cpu_s": _time(onnx_path, compute, time_tile, time_batch)})
            print(json.dumps(lines[-1]), flush=True)
    for variant in variants.split(","):
        options = variant.split("+")[1:]
        method, extra = _method(options)
        ccrop = next((int(o[1:]) for o in options if o.startswith("c")), 48)
        cimages = next((int(o[1:]) for o in options if o.startswith("i")), calib_images)
        calib = _batches(load_validation_set(HELD_OUT, get_config("jpeg"), None, ccrop, limit=cimages,
                                             data=[datasets_root() / DEFAULT_DATA]))
        start = time.time()
        overrides = _overrides(variant, graph.graph)
        if overrides:
            extra["TensorQuantOverrides"] = overrides
        quantized = quantize(graph, _keep(variant, graph.graph), calib, method=method, options=extra)
        made = time.time() - start
        for runtime in runtimes.split(","):
            backend, _, compute = runtime.partition("-")
            outs, seconds = _run(quantized, backend, compute or "f32", batches)
            row = score(outs)
            row = {"variant": variant, "runtime": runtime, "cpu_s": round(seconds, 1), "quantize_s": round(made, 1),
                   **row, "cost_db": round(row["psnr"] - base["psnr"], 4)}
            if time_tile and backend == "ov":
                row.update(tile=time_tile, batch=time_batch,
                           call_cpu_s=_time(quantized, compute or "f32", time_tile, time_batch))
            lines.append(row)
            print(json.dumps(row), flush=True)
    with open(out, "a") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
