"""dagl.runtime.compare: the parity tolerances and the verdicts, on arrays with known differences."""

from __future__ import annotations

import numpy as np
import pytest

from dagl.runtime.backends import tolerance_for
from dagl.runtime.compare import Tolerance, compare, judge, worst

#: The bounds under test, as every verdict gets them: from the backend registry.
ONNX_FP32, ONNX_FP16 = tolerance_for("onnxruntime", "fp32"), tolerance_for("onnxruntime", "fp16")

BASELINE = np.full((8, 8), 0.5, np.float32)


def test_tolerances_are_the_project_bounds():
    assert (ONNX_FP32.max_abs, ONNX_FP32.min_psnr) == (1e-4, None)
    assert (ONNX_FP16.max_abs, ONNX_FP16.min_psnr) == (None, 50.0)
    trt32, trt16 = tolerance_for("tensorrt", "fp32"), tolerance_for("tensorrt", "fp16")
    assert (trt32.max_abs, trt32.min_psnr, trt16.max_abs, trt16.min_psnr) == (1e-4, None, None, 50.0)
    with pytest.raises(ValueError, match="no parity tolerance for backend 'onnxruntime' at precision 'bf16'"):
        tolerance_for("onnxruntime", "bf16")


def test_float32_verdict_within_and_beyond_the_absolute_bound():
    # Offsets that are powers of two are exact in float32 around 0.5, so the numbers are exact too.
    inside = compare(BASELINE, BASELINE + np.float32(2**-16), ONNX_FP32)
    assert inside.passed and inside.max_abs == 2**-16
    assert inside.psnr == pytest.approx(96.3296, abs=1e-4)  # 10 log10(1 / 2^-32)
    outside = compare(BASELINE, BASELINE + np.float32(2**-12), ONNX_FP32)
    assert not outside and outside.max_abs == 2**-12
    assert outside.summary.startswith("FAILED float32 ONNX vs float32 PyTorch: max |diff| 0.000244, PSNR 72.25 dB")
    assert outside.summary.endswith("(required: max |diff| <= 0.0001)")


def test_fp16_verdict_is_by_psnr():
    assert compare(BASELINE, BASELINE + np.float32(2**-10), ONNX_FP16).passed  # 60.21 dB
    failed = compare(BASELINE, BASELINE + np.float32(2**-7), ONNX_FP16)
    assert not failed.passed and failed.psnr == pytest.approx(42.1442, abs=1e-4)
    assert "(required: PSNR >= 50 dB)" in failed.summary


def test_worst_takes_the_largest_difference_and_the_lowest_psnr():
    verdicts = [judge(1e-5, 110.0, ONNX_FP32), judge(3e-5, 95.0, ONNX_FP32), judge(2e-5, 120.0, ONNX_FP32)]
    combined = worst(verdicts)
    assert combined.passed and (combined.max_abs, combined.psnr, combined.count) == (3e-5, 95.0, 3)
    assert " over 3 arrays: " in combined.summary
    assert not worst(verdicts + [judge(2e-4, 80.0, ONNX_FP32)]).passed


def test_both_bounds_must_hold_when_a_tolerance_sets_both():
    both = Tolerance("strict", max_abs=1e-3, min_psnr=70.0)
    assert not judge(1e-4, 65.0, both).passed and not judge(2e-3, 80.0, both).passed and judge(1e-4, 80.0, both).passed
    assert both.describe() == "max |diff| <= 0.001 and PSNR >= 70 dB"


def test_shapes_must_match():
    with pytest.raises(ValueError, match=r"cannot compare shapes \(8, 7\) and \(8, 8\)"):
        compare(BASELINE, BASELINE[:, :7], ONNX_FP32)
