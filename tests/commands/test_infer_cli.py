"""dagl-infer as a new user meets it: good runs, and each bad input answered in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import dagl.images.io
from dagl.images.io import read_image, write_image
from dagl.runtime import Restorer
from dagl.runtime.channels import DEFAULT_CHROMA
from dagl.runtime.cli import main
from crafted import png_bomb, tiff_bomb, tiny_onnx
from colour_images import RNG, colour_jpeg, jfif_rgb, jfif_ycbcr

FAST = ["--tile", "16", "--overlap", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def onnx_path(jpeg_onnx):
    return jpeg_onnx


@pytest.fixture
def gray_png(tmp_path):
    (tmp_path / "in").mkdir()
    return write_image(tmp_path / "in" / "gray.png", np.random.default_rng(0).random((24, 20), dtype=np.float32), 8)


def infer(*args: object) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.stderr and result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stderr.strip().splitlines()


def errors(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("dagl-infer: error:")]


def files(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
def test_one_image_to_npy_is_the_restorer_output(onnx_path, gray_png, tmp_path):
    code, lines = infer(onnx_path, gray_png, "-o", tmp_path / "out.npy", *FAST)
    assert code == 0 and not errors(lines)
    assert "1 image(s)" in lines[-1] and "onnxruntime" in lines[-1]
    with Restorer(onnx_path, tile=16, overlap=4) as restore:
        expected = restore(read_image(gray_png))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


@pytest.mark.slow
def test_several_inputs_go_to_a_folder_and_failures_do_not_stop_the_rest(onnx_path, gray_png, tmp_path):
    (tmp_path / "in" / "notes.png").write_text("not an image")
    write_image(tmp_path / "in" / "second.tif", np.full((16, 16), 0.5, np.float32), 16)
    out = tmp_path / "out"
    code, lines = infer(onnx_path, tmp_path / "in", tmp_path / "missing.png", "-o", out, *FAST)
    assert code == 2  # every failure was a file the user gave
    assert len(errors(lines)) == 2 and "missing.png: no such file" in errors(lines)[1] + errors(lines)[0]
    assert files(out) == ["gray.png", "second.tif"]
    assert "2 image(s)" in lines[-1] and "2 failed" in lines[-1]


def test_glob_inputs(onnx_path, gray_png, tmp_path):
    code, _ = infer(onnx_path, str(tmp_path / "in" / "*.png"), "-o", tmp_path / "out", *FAST)
    assert code == 0 and files(tmp_path / "out") == ["gray.png"]


@pytest.mark.slow
def test_a_colour_jpeg_comes_out_in_colour_its_luma_restored_as_gray(onnx_path, tmp_path):
    source = colour_jpeg(tmp_path / "photo.jpg", 24, 32)
    code, lines = infer(onnx_path, source, "-o", tmp_path / "out.npy", "--chroma", "keep", *FAST)
    assert code == 0 and sum("restored the luma, kept the colour" in line for line in lines) == 1
    rgb, out = read_image(source), np.load(tmp_path / "out.npy")
    with Restorer(onnx_path, tile=16, overlap=4) as restore:
        gray = restore(jfif_ycbcr(rgb)[..., 0].astype(np.float32))  # the gray restoration of its luma
    assert out.shape == rgb.shape
    want = jfif_ycbcr(rgb)
    np.testing.assert_allclose(out, np.clip(jfif_rgb(gray, want[..., 1], want[..., 2]), 0, 1), atol=1e-5)
    in_gamut = ((out > 0) & (out < 1)).all(axis=2)  # random weights push many pixels past the gamut
    assert in_gamut.mean() > 0.3
    got = jfif_ycbcr(out)
    np.testing.assert_allclose(got[..., 1:][in_gamut], want[..., 1:][in_gamut], atol=1e-6)
    np.testing.assert_allclose(got[..., 0][in_gamut], gray[in_gamut], atol=1e-5)
    assert np.abs(gray - want[..., 0]).max() > 1e-3  # the network did change the luma


def test_chroma_restore_runs_each_colour_plane_through_the_gray_network(onnx_path, tmp_path):
    source = colour_jpeg(tmp_path / "photo.jpg", 16, 16)
    code, lines = infer(onnx_path, source, "-o", tmp_path / "out.npy", "--chroma", "restore", *FAST)
    assert code == 0 and not errors(lines)
    assert sum("restored the luma and the chroma" in line for line in lines) == 1
    rgb, out = read_image(source), np.load(tmp_path / "out.npy")
    want = jfif_ycbcr(rgb).astype(np.float32)  # T.871's formulas: Y, Cb, Cr each restored as a gray image
    with Restorer(onnx_path, tile=16, overlap=4) as restore:
        planes = [restore(np.ascontiguousarray(want[..., i])) for i in range(3)]
    np.testing.assert_allclose(out, np.clip(jfif_rgb(*planes), 0, 1), atol=1e-5)
    code, _ = infer(onnx_path, source, "-o", tmp_path / "kept.npy", "--chroma", "keep", *FAST)  # the decoded Cb, Cr
    kept = np.load(tmp_path / "kept.npy")
    np.testing.assert_allclose(kept, np.clip(jfif_rgb(planes[0], want[..., 1], want[..., 2]), 0, 1), atol=1e-5)
    assert code == 0 and np.abs(kept - out).max() > 1e-3
    code, _ = infer(onnx_path, source, "-o", tmp_path / "default.npy", *FAST)  # docs/colour.md's decision
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "default.npy"), {"keep": kept, "restore": out}[DEFAULT_CHROMA])


def test_chroma_given_for_a_colour_task_is_refused_in_one_line(tmp_path):
    model = tiny_onnx(tmp_path / "rgb.onnx", "identity", channels=3, metadata={"dagl.task": "real-denoise"})
    image = write_image(tmp_path / "rgb.png", RNG.random((16, 16, 3), dtype=np.float32), 8)
    code, lines = infer(model, image, "-o", tmp_path / "out.png", "--chroma", "keep")
    assert code == 2 and lines == ["dagl-infer: error: --chroma is for gray tasks given a colour image; task "
                                   "'real-denoise' restores colour itself"]
    assert not (tmp_path / "out.png").exists()
    code, _ = infer(model, image, "-o", tmp_path / "out.png")  # not given: nothing to refuse
    assert code == 0


def test_help_teaches_chroma_and_its_cost():
    result = CliRunner().invoke(main, ["--help"], terminal_width=200)
    assert "--chroma [keep|restore]" in result.output and "~3x the time" in result.output


def test_colour_into_a_sixteen_bit_png_is_refused_before_inference(tmp_path, monkeypatch):
    import dagl.runtime.cli as cli

    def no_inference(*args, **kwargs):
        raise AssertionError("the network ran for an output that cannot be written")

    monkeypatch.setattr(cli.Restorer, "__call__", no_inference)
    source = colour_jpeg(tmp_path / "photo.jpg", 16, 16)
    code, lines = infer(tiny_onnx(tmp_path / "id.onnx", "identity"), source, "-o", tmp_path / "o.png", "--bit-depth", "16")
    assert code == 2 and errors(lines) == [f"dagl-infer: error: {tmp_path / 'o.png'}: 16-bit colour PNG is not "
                                           f"supported; write a .tif instead"]


@pytest.mark.slow
def test_side_by_side_is_input_output_and_the_amplified_difference(onnx_path, tmp_path):
    from dagl.runtime.side_by_side import GAIN, GAP, LABEL_HEIGHT

    source = colour_jpeg(tmp_path / "photo.jpg", 24, 32)
    code, lines = infer(onnx_path, source, "-o", tmp_path / "out.png", "--side-by-side", tmp_path / "cmp", *FAST)
    assert code == 0
    picture = read_image(tmp_path / "cmp" / "out-side-by-side.png")
    before, after = read_image(source), read_image(tmp_path / "out.png")
    assert picture.shape == (LABEL_HEIGHT + 24, 3 * 32 + 2 * GAP, 3)
    body = picture[LABEL_HEIGHT:]
    np.testing.assert_allclose(body[:, :32], before, atol=0.5 / 255)
    np.testing.assert_allclose(body[:, 32 + GAP:64 + GAP], after, atol=0.5 / 255)
    difference = np.clip(np.abs(after - before) * GAIN, 0, 1)  # after is 8-bit here, the picture used the float
    assert np.abs(body[:, 64 + 2 * GAP:] - difference).max() <= GAIN * 0.5 / 255 + 0.5 / 255
    assert difference.max() > 0.1 and (picture[:LABEL_HEIGHT] < 0.5).any()  # something to see, and its labels
    code, lines = infer(onnx_path, source, "-o", tmp_path / "again.png", "--side-by-side", tmp_path / "cmp", *FAST)
    assert code == 0  # another output name: another picture
    (tmp_path / "out.png").unlink()
    code, lines = infer(onnx_path, source, "-o", tmp_path / "out.png", "--side-by-side", tmp_path / "cmp", *FAST)
    assert code == 2 and "out-side-by-side.png exists; pass --overwrite" in errors(lines)[0]


@pytest.mark.slow
def test_sixteen_bit_input_is_read_at_full_precision(onnx_path, tmp_path):
    fine = (np.arange(24 * 20, dtype=np.float32).reshape(24, 20) * 97 % 65536) / 65535
    source = write_image(tmp_path / "deep.png", fine, 16)
    code, _ = infer(onnx_path, source, "-o", tmp_path / "out.npy", "--tiling", "none", "--threads", "1")
    with Restorer(onnx_path, tiling="none") as restore:
        expected = restore(fine)
    assert code == 0 and np.abs(np.load(tmp_path / "out.npy") - expected).max() < 1e-4


def rgba(path, alpha):
    pixels = np.full((16, 16, 4), 128, np.uint8)
    pixels[..., 3] = alpha
    Image.fromarray(pixels).save(path)
    return path


def truncated(path, source):
    path.write_bytes(source.read_bytes()[:150])
    return path


@pytest.mark.slow
@pytest.mark.parametrize("make,message", [
    (lambda d, g: d / "absent.png", "no such file"),
    (lambda d, g: (d / "fake.png").write_text("hello") and d / "fake.png", "not an image"),
    (lambda d, g: truncated(d / "cut.png", g), "truncated"),
    (lambda d, g: rgba(d / "alpha.png", 7), "transparent pixels"),
    (lambda d, g: np.save(d / "five.npy", np.zeros((16, 16, 5), np.float32)) or d / "five.npy", "declares 5 samples per pixel"),
    (lambda d, g: write_image(d / "tiny.png", np.zeros((5, 40), np.float32), 8), "at least 8 px"),
    (lambda d, g: png_bomb(d / "bomb.png"), "exceeds the limit of 40,000,000 pixels; raise it with --max-pixels"),
    (lambda d, g: tiff_bomb(d / "bomb.tif"), "exceeds the limit of 40,000,000 pixels; raise it with --max-pixels"),
    (lambda d, g: np.save(d / "nan.npy", np.full((16, 16), np.nan, np.float32)) or d / "nan.npy",
     "holds 256 NaN or infinite sample(s)"),
])
def test_bad_input_gets_one_line_and_no_output(onnx_path, gray_png, tmp_path, make, message):
    source = make(tmp_path, gray_png)
    out = tmp_path / "out"
    code, lines = infer(onnx_path, source, "-o", out / "x.png", *FAST)
    assert code != 0 and len(errors(lines)) == 1 and message in errors(lines)[0]
    assert files(out) == []


def test_opaque_alpha_is_carried_through(onnx_path, tmp_path):
    code, _ = infer(onnx_path, rgba(tmp_path / "opaque.png", 255), "-o", tmp_path / "o.png", *FAST)
    out = read_image(tmp_path / "o.png")
    assert code == 0 and out.shape == (16, 16, 2) and (out[..., 1] == 1).all()  # gray content (128, 128, 128): gray


def test_input_and_existing_outputs_are_never_overwritten_without_permission(onnx_path, tmp_path):
    source = tmp_path / "same.npy"
    np.save(source, np.full((16, 16), 0.25, np.float32))
    before = source.read_bytes()
    code, lines = infer(onnx_path, source, "-o", source, *FAST)
    assert code != 0 and "is the input itself; pass --overwrite" in errors(lines)[0]
    assert source.read_bytes() == before
    code, _ = infer(onnx_path, source, "-o", source, "--overwrite", *FAST)
    assert code == 0 and source.read_bytes() != before
    existing = write_image(tmp_path / "exists.png", np.zeros((8, 8), np.float32), 8)
    code, lines = infer(onnx_path, source, "-o", existing, *FAST)
    assert code != 0 and "exists; pass --overwrite" in errors(lines)[0]


def test_unwritable_output_is_one_line(onnx_path, gray_png, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    code, lines = infer(onnx_path, gray_png, "-o", blocker / "out.png", *FAST)
    assert code == 2 and len(errors(lines)) == 1 and "cannot create output folder" in lines[0]


@pytest.mark.parametrize("args,message", [
    (["--task", "denoise"], "exported for task 'jpeg', not 'denoise'"),
    (["--backend", "torch"], "cannot run with --backend torch"),
    (["--overlap", "16"], "overlap < tile"),
])
def test_bad_options_are_one_line(onnx_path, gray_png, tmp_path, args, message):
    code, lines = infer(onnx_path, gray_png, "-o", tmp_path / "o.png", "--tile", "16", "--overlap", "4", *args)
    assert code == 2 and len(lines) == 1 and message in lines[0]


def test_unknown_model_file_is_one_line(gray_png, tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"\0")
    code, lines = infer(model, gray_png)
    assert code == 2 and lines == [f"dagl-infer: error: {model}: unknown model type .bin; expected "
                                   f".plan, .engine, .onnx, .pt, .pth, .safetensors"]


def test_failed_run_leaves_no_empty_output_folder(onnx_path, gray_png, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, lines = infer("demosaic", gray_png)  # no weights ship for demosaic: the model fails to load
    assert code != 0 and "no trained weights ship" in errors(lines)[0]
    (tmp_path / "fake.png").write_text("not an image")
    code, lines = infer(onnx_path, tmp_path / "fake.png", *FAST)
    assert code == 2 and "not an image" in errors(lines)[0]
    assert not (tmp_path / "restored").exists()


def test_output_folder_is_created_when_the_first_output_is_written(onnx_path, gray_png, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _ = infer(onnx_path, gray_png, *FAST)
    assert code == 0 and files(tmp_path / "restored") == ["gray.png"]


def test_progress_is_printed_as_lines_without_a_terminal(onnx_path, gray_png, tmp_path):
    write_image(tmp_path / "in" / "second.png", np.full((16, 16), 0.5, np.float32), 8)
    code, lines = infer(onnx_path, tmp_path / "in", "-o", tmp_path / "out", *FAST)
    assert code == 0
    progress = [line for line in lines if line.startswith("image ")]
    assert len(progress) == 2 and progress[0].startswith("image 1/2 done, eta ") and progress[1] == "image 2/2 done"
    assert lines[-1].endswith(f"; wrote 2 files to {tmp_path / 'out'}")


def test_a_failed_image_is_not_done_and_the_last_line_says_where_the_output_went(onnx_path, gray_png, tmp_path):
    # An ONNX file names its task only once loaded, so a transparent image's refusal comes in its turn.
    broken = rgba(tmp_path / "in" / "broken.png", 7)
    code, lines = infer(onnx_path, broken, gray_png, "-o", tmp_path / "out", *FAST)
    assert code == 2
    assert [line.split(",")[0] for line in lines if line.startswith("image ")] == ["image 1/2 failed", "image 2/2 done"]
    assert lines[-1].endswith(f"1 failed; wrote {tmp_path / 'out' / 'gray.png'}")
    # A file that is no image is refused before the model loads, and only the others run.
    (tmp_path / "in" / "notes.png").write_text("not an image")
    code, lines = infer(onnx_path, tmp_path / "in" / "notes.png", gray_png, "-o", tmp_path / "out2", *FAST)
    assert code == 2 and lines[0].startswith(f"dagl-infer: error: {tmp_path / 'in' / 'notes.png'}: not an image")
    assert [line.split(",")[0] for line in lines if line.startswith("image ")] == ["image 1/1 done"]
    assert lines[-1].endswith(f"1 failed; wrote {tmp_path / 'out2' / 'gray.png'}")
    code, lines = infer(onnx_path, gray_png, "-o", tmp_path / "one.npy", *FAST)
    assert code == 0 and lines[-1].endswith(f"; wrote {tmp_path / 'one.npy'}")


def test_float32_into_png_is_refused_before_the_model_loads(gray_png, tmp_path, monkeypatch):
    from dagl.runtime import auto

    monkeypatch.setattr(auto, "Restorer", lambda *args, **kwargs: pytest.fail("the model was loaded"))
    code, lines = infer("jpeg", gray_png, "-o", tmp_path / "x.png", "--bit-depth", "32")
    assert code == 2 and len(lines) == 1
    assert lines[0] == (f"dagl-infer: error: {gray_png}: {tmp_path / 'x.png'}: .png cannot hold 32-bit "
                        "samples; use --bit-depth 8 or 16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: --device cuda is valid here")
def test_device_cuda_without_a_gpu_is_a_usage_error(onnx_path, gray_png):
    code, lines = infer(onnx_path, gray_png, "--device", "cuda")
    assert code == 2 and lines[-1].startswith("dagl-infer: error: Invalid value for '--device': cuda, but torch "
                                              "sees no CUDA GPU")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: --device cuda:0 is valid here")
def test_device_cuda_n_without_a_gpu_is_one_line(onnx_path, gray_png):
    code, lines = infer(onnx_path, gray_png, "--device", "cuda:1")
    assert code == 2 and lines == ["dagl-infer: error: Invalid value for '--device': cuda:1, but torch sees no "
                                   "CUDA GPU on this machine; use --device cpu (or auto)"]


def test_device_names_other_than_auto_cpu_cuda_are_refused(onnx_path, gray_png):
    code, lines = infer(onnx_path, gray_png, "--device", "gpu")
    assert code == 2 and "'gpu' is not a device; use auto, cpu, cuda or cuda:N" in lines[-1]


def test_missing_inputs_is_a_usage_error_with_the_shared_prefix(onnx_path):
    code, lines = infer(onnx_path)
    assert code == 2 and lines == ["dagl-infer: error: Missing argument 'INPUTS...'."]


def test_max_pixels_sets_the_library_limit(gray_png, tmp_path):
    previous = dagl.images.io.max_pixels()
    try:
        infer(tmp_path / "absent.onnx", gray_png, "-o", tmp_path / "o.png", "--max-pixels", "1000")
        assert dagl.images.io.max_pixels() == 1000
    finally:
        dagl.images.io.set_max_pixels(previous)


def test_nan_output_fails_that_image_only_and_writes_nothing_for_it(gray_png, tmp_path):
    """x / x is NaN where a pixel is 0: that image fails, the next one is written, the exit code says so."""
    model = tiny_onnx(tmp_path / "div.onnx", "divide")
    with_zero = np.full((16, 16), 0.5, np.float32)
    with_zero[2, 2] = 0.0
    np.save(tmp_path / "in" / "a_zero.npy", with_zero)
    out = tmp_path / "out"
    code, lines = infer(model, tmp_path / "in" / "a_zero.npy", gray_png, "-o", out, *FAST)
    assert code == 1
    assert errors(lines) == [f"dagl-infer: error: {tmp_path / 'in' / 'a_zero.npy'}: the model produced 1 NaN or infinite "
                             f"value(s) (broken weights, or FP16 overflow); nothing was written for this image"]
    assert files(out) == ["gray.png"]


def test_training_checkpoint_as_model_is_one_line(gray_png, tmp_path):
    import torch

    checkpoint = tmp_path / "run" / "checkpoint.pt"
    checkpoint.parent.mkdir()
    torch.save({"model": {}, "rng": np.random.get_state()}, checkpoint)
    code, lines = infer(checkpoint, gray_png, "--task", "jpeg", "-o", tmp_path / "o.png")
    assert code == 2 and len(lines) == 1 and "\x1b" not in lines[0]
    assert "holds Python objects besides tensors" in lines[0] and "not unpickled for safety" in lines[0]
