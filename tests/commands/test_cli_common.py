"""The commands' shared options and their one error path (dagl.cli.common)."""

from __future__ import annotations

import click
import pytest
import torch
from click.testing import CliRunner

from dagl.calibration.cli import main as calibrate_main
from dagl.cli.common import Command, Device, device_option, sigma_option
from dagl.device import DeviceError, cuda_index, is_cuda, resolve_device
from dagl.errors import DaglError, UserInputError
from dagl.export.cli import main as export_main
from dagl.runtime.bench import main as bench_main
from dagl.runtime.cli import main as infer_main
from dagl.runtime.evaluate.cli import main as eval_main
from dagl.train.cli import command as train_command

COMMANDS = {"dagl-export": export_main, "dagl-infer": infer_main, "dagl-bench": bench_main, "dagl-eval": eval_main,
            "dagl-train": train_command, "dagl-calibrate": calibrate_main}


@pytest.mark.parametrize("prog", COMMANDS)
def test_every_command_answers_a_usage_error_in_one_prefixed_line_with_exit_2(prog):
    result = CliRunner().invoke(COMMANDS[prog], ["--zzz"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"{prog}: error: No such option '--zzz'."]


@pytest.mark.parametrize("prog", [name for name in COMMANDS if name != "dagl-bench"])  # bench takes no --sigma
def test_every_command_takes_the_same_sigma_type(prog):
    sigma = next(p for p in COMMANDS[prog].params if p.name == "sigma")
    assert isinstance(sigma.type, click.IntRange) and (sigma.type.min, sigma.type.max) == (1, 255)


def _command(error: Exception) -> click.Command:
    @click.command("dagl-test", cls=Command)
    @sigma_option()
    def main(sigma: int | None) -> None:
        raise error

    return main


@pytest.mark.parametrize("error, code", [(DaglError("engine build failed"), 1), (UserInputError("bad file x"), 2)])
def test_dagl_errors_are_one_line_with_their_exit_code(error, code):
    result = CliRunner().invoke(_command(error), [])
    assert result.exit_code == code and result.stderr == f"dagl-test: error: {error}\n"
    assert _command(error).run([]) == code


def test_other_exceptions_keep_their_traceback():
    result = CliRunner().invoke(_command(ValueError("a bug")), [])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)  # not swallowed into one line
    with pytest.raises(ValueError, match="a bug"):
        _command(ValueError("a bug")).run([])


def test_device_resolves_auto_and_refuses_cuda_without_a_gpu():
    device = Device()
    assert device.convert("cpu", None, None) == "cpu"
    assert device.convert("auto", None, None) == "auto" and device.convert(" AUTO", None, None) == "auto"
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:0", "cuda:3"):
            with pytest.raises(click.BadParameter, match=f"^{name}, but torch sees no CUDA GPU on this machine; "
                                                         f"use --device cpu \\(or auto\\)$"):
                device.convert(name, None, None)


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "cpu:0", "auto:1", "cuda:-1", ""])
def test_device_names_that_are_not_devices_are_refused(name):
    with pytest.raises(DeviceError, match="is not a device; use auto, cpu, cuda or cuda:N"):
        resolve_device(name)


def test_cuda_n_picks_a_gpu_that_exists(monkeypatch):
    """Two GPUs (torch's answers faked): cuda:1 is one of them, cuda:2 is not; auto is plain cuda."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [resolve_device(n) for n in ("auto", "cuda", "CUDA:1", "cuda:01", "cpu")] == \
        ["cuda", "cuda", "cuda:1", "cuda:1", "cpu"]
    with pytest.raises(DeviceError, match=r"^cuda:2, but torch sees 2 CUDA GPU\(s\) \(cuda:0 to cuda:1\)$"):
        resolve_device("cuda:2")
    assert is_cuda("cuda:1") and is_cuda("cuda") and not is_cuda("cpu")
    assert [cuda_index(n) for n in ("cuda:1", "cuda", "cpu")] == [1, None, None]


def test_onnxruntime_runs_cuda_n_on_gpu_n(monkeypatch):
    import onnxruntime

    from dagl.runtime.onnxrt.providers import session_providers

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert session_providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert session_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert session_providers("cpu") == ["CPUExecutionProvider"]


def test_device_option_help_says_what_auto_means():
    @click.command(cls=Command)
    @device_option()
    def main(device: str) -> None:
        click.echo(device)

    result = CliRunner().invoke(main, ["--help"])
    help_text = " ".join(result.output.split())
    assert "auto = cuda if torch sees a GPU, else cpu; cuda:N picks a GPU" in help_text
    assert "[default: auto]" in help_text
    assert CliRunner().invoke(main, []).output == "auto\n"  # resolved where the model loads, so --help needs no torch
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("command", ["dagl.runtime.cli", "dagl.runtime.bench", "dagl.runtime.evaluate.cli",
                                     "dagl.runtime.evaluate.cli:paper"])
def test_every_running_command_defaults_to_device_auto(command):
    import importlib

    module, _, name = command.partition(":")
    cli = getattr(importlib.import_module(module), name or "main")
    [option] = [p for p in cli.params if p.name == "device"]
    assert option.default == "auto" and isinstance(option.type, Device)


def test_a_bare_group_prints_its_help_not_an_error_line():
    result = CliRunner().invoke(eval_main, [])
    assert result.exit_code == 2 and result.stderr.startswith("Usage: dagl-eval [OPTIONS] [COMMAND] [ARGS]...")
    assert ": error:" not in result.stderr
