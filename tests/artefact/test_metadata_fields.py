"""Every field a file declares about its network (ONNX metadata, safetensors metadata, an engine
sidecar) passes one validator: type, range and length, refused in one line naming the file and field."""

from __future__ import annotations

import json

import pytest
import torch

from crafted import tiny_onnx
from dagl.artefact import EngineSidecar, MetadataError, SidecarError, check_declared, sidecar_path
from dagl.errors import UserInputError
from runtime.loader import create_runner

BAD = [("channels", "abc"), ("channels", "1.5"), ("channels", "9" * 5000), ("channels", "0"), ("channels", "-1"),
       ("sigma", "x"), ("sigma", "300"), ("sigma", "2.5"), ("precision", "fp8"), ("task", "j" * 10_000)]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_bad_onnx_metadata_is_one_line_naming_file_and_field(tmp_path, field, value):
    path = tiny_onnx(tmp_path / "m.onnx", metadata={f"dagl.{field}": value})
    with pytest.raises(MetadataError) as excinfo:
        create_runner(path)
    message = str(excinfo.value)
    assert "\n" not in message and len(message) < 300
    assert message.startswith(f"{path}: field dagl.{field} = ")
    assert excinfo.value.exit_code == 2


def _safetensors(path, metadata):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize(("field", "value"), [("sigma", "abc"), ("channels", "1.5"), ("sigma", "9" * 5000)])
def test_bad_safetensors_metadata_is_refused_before_any_tensor_loads(tmp_path, field, value):
    path = _safetensors(tmp_path / "w.safetensors", {"dagl.task": "denoise", f"dagl.{field}": value})
    with pytest.raises(MetadataError, match=rf"w\.safetensors: field dagl\.{field} = "):
        create_runner(path)


def test_bad_sidecar_field_is_a_sidecar_error(tmp_path):
    engine = tmp_path / "e.plan"
    engine.write_bytes(b"x")
    record = {"task": "jpeg", "channels": "abc", "precision": "fp16", "sigma": None, "tensorrt_version": "11.0",
              "gpu_name": "g", "compute_capability": "9.0", "min_shape": [1, 1, 16, 16],
              "opt_shape": [1, 1, 16, 16], "max_shape": [1, 1, 16, 16]}
    sidecar_path(engine).write_text(json.dumps(record))
    with pytest.raises(SidecarError, match=r"e\.plan\.json: field channels = 'abc' is not an integer from 1 to 4"):
        EngineSidecar.read(engine)
    sidecar_path(engine).write_text(json.dumps(record | {"channels": True}))  # JSON true is not a count
    with pytest.raises(SidecarError, match="field channels = True"):
        EngineSidecar.read(engine)


def test_valid_fields_come_back_typed():
    assert check_declared({"channels": "3", "sigma": "", "precision": "fp16", "task": "demosaic"}, "f") == {
        "channels": 3, "sigma": None, "precision": "fp16", "task": "demosaic"}
    assert check_declared({"sigma": 25, "channels": 1}, "f") == {"sigma": 25, "channels": 1}


def test_dagl_infer_refuses_bad_metadata_in_one_line_exit_2(tmp_path, capsys):
    from runtime.cli import main

    model = tiny_onnx(tmp_path / "m.onnx", metadata={"dagl.sigma": "x"})
    image = tmp_path / "in.png"
    from PIL import Image

    Image.new("L", (16, 16)).save(image)
    assert main.run([str(model), str(image), "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"dagl-infer: error: {model}: field dagl.sigma = 'x' is not an integer noise level from 1 to 255; "
                   f"the file was not written by dagl or has been altered"]
    assert issubclass(MetadataError, UserInputError)
