"""The x8 self-ensemble: exact inverse transforms."""

from __future__ import annotations

import numpy as np
import pytest

from dagl.runtime.ensemble import TRANSFORMS, ensemble, forward_transform, inverse_transform


@pytest.mark.parametrize("turns,flip", TRANSFORMS)
def test_inverse_undoes_forward_on_non_square_tiles(turns, flip):
    batch = np.random.default_rng(0).random((2, 3, 5, 7), dtype=np.float32)
    np.testing.assert_array_equal(inverse_transform(forward_transform(batch, turns, flip), turns, flip), batch)


def test_transforms_are_the_eight_distinct_symmetries():
    batch = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    images = {forward_transform(batch, t, f).tobytes() + bytes(forward_transform(batch, t, f).shape)
              for t, f in TRANSFORMS}
    assert len(images) == 8


def test_ensemble_reports_each_of_its_eight_passes():
    calls = []
    batch = np.zeros((3, 1, 8, 8), np.float32)
    ensemble(lambda b: b, progress=calls.append)(batch)
    assert calls == [3] * 8


def test_restorer_progress_moves_during_the_ensemble_and_adds_up(tmp_path):
    from crafted import tiny_onnx

    from dagl.runtime import Restorer

    model = tiny_onnx(tmp_path / "id.onnx", "identity")
    image = np.random.default_rng(0).random((40, 56), dtype=np.float32)
    for ensemble_on in (False, True):
        calls = []
        with Restorer(model, tile=16, overlap=4, batch=4, ensemble=ensemble_on) as restore:
            out = restore(image, progress=calls.append)
            tiles = restore.tiles_for(*image.shape)
        np.testing.assert_allclose(out, image, atol=1e-6)
        assert sum(calls) == tiles
        batches = -(-tiles // (8 if ensemble_on else 1) // 4)
        assert len(calls) == batches * (8 if ensemble_on else 1)  # 8 steps per batch, not one at its end
    assert tiles == 8 * 15  # 3 x 5 grid tiles (stride 12), each run 8 times


def test_ensemble_of_an_equivariant_function_is_the_function():
    def equivariant(batch):  # pixelwise and a 3x3 box blur: both commute with flips and rotations
        padded = np.pad(batch, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
        h, w = batch.shape[-2:]
        blur = sum(padded[..., i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9
        return np.tanh(blur) + batch ** 2

    batch = np.random.default_rng(1).random((2, 1, 9, 13), dtype=np.float32)
    np.testing.assert_allclose(ensemble(equivariant)(batch), equivariant(batch), rtol=1e-5, atol=1e-6)


def test_ensemble_of_a_non_equivariant_function_averages_it():
    batch = np.random.default_rng(2).random((1, 1, 6, 6), dtype=np.float32)
    shift_right = lambda b: np.roll(b, 1, axis=-1)  # noqa: E731
    expected = np.mean([inverse_transform(shift_right(forward_transform(batch, t, f)), t, f)
                        for t, f in TRANSFORMS], axis=0)
    out = ensemble(shift_right)(batch)
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert not np.allclose(out, shift_right(batch))
