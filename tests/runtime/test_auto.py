"""``dagl-infer --backend auto``'s rule (runtime/auto.py): every branch of the pure choice, and the probe of the
machine with OpenVINO missing, without bfloat16, or with it. No network runs here."""

from __future__ import annotations

import sys
import types

import pytest

from dagl.runtime import auto
from dagl.runtime.auto import AutoChoice, Capabilities, choose_auto
from dagl.runtime.backends import REGISTRY, auto_backend

FAST = ("backend: openvino bf16 (auto: the fastest CPU path within 0.05 dB of float32; --backend torch for PyTorch "
        "float32)")


def never() -> Capabilities:
    raise AssertionError("the machine was probed where the rule does not need it")


@pytest.mark.parametrize("kind, backend", [("engine", "tensorrt"), ("onnx", "onnxruntime")])
@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
def test_engines_and_onnx_files_keep_their_kinds_backend_silently(kind, backend, device):
    assert choose_auto(kind, device, never) == AutoChoice(backend, None, None)


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_weights_on_a_gpu_stay_pytorch_float32(device):
    assert choose_auto("weights", device, never) == AutoChoice(
        "torch", None, f"backend: torch fp32 (auto: PyTorch float32 on {device})")


def test_weights_on_a_cpu_with_openvino_and_bfloat16_run_openvino_bf16():
    assert choose_auto("weights", "cpu", lambda: Capabilities(openvino=True, bf16=True)) == AutoChoice(
        "openvino", "bf16", FAST)


def test_weights_on_a_cpu_without_openvino_stay_pytorch_float32_and_say_what_to_install():
    choice = choose_auto("weights", "cpu", lambda: Capabilities(openvino=False, bf16=False))
    assert (choice.backend, choice.precision) == ("torch", None)
    assert choice.line == ("backend: torch fp32 (auto: OpenVINO is not installed; pip install 'dagl[openvino]' for "
                           "its bfloat16 path, faster within 0.05 dB of float32)")


def test_weights_on_a_cpu_without_bfloat16_stay_pytorch_float32_and_say_why():
    choice = choose_auto("weights", "cpu", lambda: Capabilities(openvino=True, bf16=False))
    assert (choice.backend, choice.precision) == ("torch", None)
    assert choice.line == ("backend: torch fp32 (auto: this CPU has no bfloat16 arithmetic (AVX512-BF16 or AMX) for "
                           "OpenVINO's bfloat16 path)")


def test_the_fast_path_is_one_the_registry_runs_on_weights_and_plain_auto_is_unchanged():
    # dagl-eval, dagl-bench and the library keep PyTorch float32 for weights (the float32 base of verdicts).
    assert auto_backend("weights").name == "torch" and REGISTRY["torch"].baseline
    assert "weights" in REGISTRY["openvino"].kinds and "bf16" in REGISTRY["openvino"].tolerances


def fake_openvino(capabilities=None, error: Exception | None = None) -> types.ModuleType:
    def get_property(device, name):
        assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
        if error:
            raise error
        return capabilities

    module = types.ModuleType("openvino")
    module.Core = lambda: types.SimpleNamespace(get_property=get_property)
    return module


@pytest.mark.parametrize("module, expected", [
    (None, Capabilities(openvino=False, bf16=False)),  # import openvino -> ImportError
    (fake_openvino(["FP32", "FP16", "INT8"]), Capabilities(openvino=True, bf16=False)),
    (fake_openvino(["BF16", "FP32", "INT8"]), Capabilities(openvino=True, bf16=True)),
    (fake_openvino(error=RuntimeError("no CPU plugin")), Capabilities(openvino=False, bf16=False)),
])
def test_the_probe(monkeypatch, module, expected):
    monkeypatch.setitem(sys.modules, "openvino", module)
    assert auto.cpu_capabilities() == expected


def failing_openvino(monkeypatch) -> None:
    from dagl.runtime.base import RuntimeLoadError
    from dagl.runtime.openvino.runner import OpenVINOWeightsRunner

    def fails(self):
        raise RuntimeLoadError("dagl-jpeg.safetensors: OpenVINO cannot convert its network (unsupported op)")

    monkeypatch.setattr(auto, "cpu_capabilities", lambda: Capabilities(openvino=True, bf16=True))
    monkeypatch.setattr(OpenVINOWeightsRunner, "activate_impl", fails)


def test_open_restorer_falls_back_to_the_kinds_backend_and_says_why_once(monkeypatch):
    failing_openvino(monkeypatch)
    notes, checked = [], []
    restorer, line = auto.open_restorer("jpeg", check=lambda made: checked.append(made.backend), note=notes.append,
                                        threads=1, tile=16, overlap=4)
    with restorer:
        assert (restorer.backend, restorer.runner.info.precision, line) == ("torch", "fp32", None)
        assert restorer.options.tile == 16  # the Restorer's options reach the fallback too
    assert notes == ["dagl-jpeg.safetensors: OpenVINO cannot convert its network (unsupported op); running it on "
                     "torch float32 instead"]
    assert checked == ["openvino", "torch"]  # each Restorer is checked before it activates


def test_open_restorer_raises_what_was_asked_for_explicitly(monkeypatch):
    from dagl.runtime.base import RuntimeLoadError

    failing_openvino(monkeypatch)
    notes = []
    with pytest.raises(RuntimeLoadError, match="cannot convert"):
        auto.open_restorer("jpeg", backend="openvino", precision="bf16", note=notes.append, threads=1)
    assert notes == []


def test_open_restorer_takes_the_fast_path_the_rule_picks(monkeypatch):
    from dagl.runtime.openvino.runner import OpenVINOWeightsRunner

    monkeypatch.setattr(auto, "cpu_capabilities", lambda: Capabilities(openvino=True, bf16=True))
    monkeypatch.setattr(OpenVINOWeightsRunner, "activate_impl", lambda self: None)  # no conversion in a unit test
    restorer, line = auto.open_restorer("jpeg", threads=1)
    assert (restorer.backend, restorer.runner.info.precision, line) == ("openvino", "bf16", FAST)
