"""Tiling policies against independent transcriptions, with cheap stand-in networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dagl.runtime.tiling import TILINGS, PeakTile, TileOptions, TilingError, TilingPolicy, register_tiling
from dagl.runtime.tiling.grid import blend_ramp, grid_positions, run_grid, tile_starts
from dagl.runtime.tiling.recursive_chop import chop_leaves, run_chop
from release_network import release_chop


def context_sensitive(batch: np.ndarray) -> np.ndarray:
    """A stand-in network whose output depends on the whole tile (its mean and its size).

    Any error in which pixels form a tile, or where an output tile is pasted, changes the result.
    """
    h, w = batch.shape[-2:]
    return batch * 0.5 + batch.mean(axis=(1, 2, 3), keepdims=True) + 0.001 * h - 0.002 * w


def torch_context_sensitive(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(context_sensitive(x.numpy()))


@pytest.mark.parametrize("shape", [(512, 512), (321, 481), (150, 97), (100, 100)])
def test_chop_matches_independent_release_chop(shape):
    image = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    ours = run_chop(image, context_sensitive)
    theirs = release_chop(torch_context_sensitive, torch.from_numpy(image)[None])[0].numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_chop_of_512_runs_256_tiles_of_76():
    shapes: list[tuple[int, ...]] = []

    def record(batch):
        shapes.extend(tuple(t.shape[-2:]) for t in batch)
        return batch

    run_chop(np.zeros((1, 512, 512), np.float32), record)
    assert len(shapes) == 256 and set(shapes) == {(76, 76)}
    assert list(chop_leaves(512, 512)) == shapes
    assert TILINGS["reference"].count_tiles(512, 512, TileOptions()) == 256


def test_chop_pads_images_the_release_cannot_chop():
    image = np.random.default_rng(1).random((1, 30, 50), dtype=np.float32)
    np.testing.assert_allclose(run_chop(image, lambda b: b * 2), image * 2)


@pytest.mark.parametrize("length,tile,overlap", [(512, 64, 16), (100, 64, 16), (64, 64, 8), (65, 64, 0), (40, 64, 8)])
def test_grid_starts_cover_with_at_least_the_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + tile == max(length, tile)
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_blend_ramp_is_positive_and_flat_inside():
    ramp = blend_ramp(64, 16)
    assert ramp.min() > 0 and ramp[16:48].min() == 1.0 and ramp[0] == pytest.approx(1 / 17)
    np.testing.assert_array_equal(ramp, ramp[::-1])


@pytest.mark.parametrize("shape,tile,overlap", [((1, 200, 150), 64, 16), ((3, 70, 90), 32, 8), ((1, 20, 33), 64, 16)])
def test_grid_of_a_pixelwise_function_is_exact(shape, tile, overlap):
    """Blending must be a partition of unity: a pixelwise network gives the untiled result."""
    image = np.random.default_rng(2).random(shape, dtype=np.float32)
    out = run_grid(image, lambda b: np.sqrt(b) + 1, TileOptions(tile, overlap, 3))
    np.testing.assert_allclose(out, np.sqrt(image) + 1, rtol=1e-6)


def test_grid_blends_overlaps_with_the_ramp():
    """Where two tiles overlap, the output is their ramp-weighted mean (computed here by hand)."""
    def tagged(batch):  # the i-th tile of the batch outputs the constant i
        return np.stack([np.full(batch.shape[1:], float(i), np.float32) for i in range(len(batch))])

    out = run_grid(np.zeros((1, 16, 24), np.float32), tagged, TileOptions(16, 8, 2))
    ramp = blend_ramp(16, 8)
    # Tile 0 covers columns 0..15 and tile 1 columns 8..23: column 8 + j is tile 0's 8 + j, tile 1's j.
    np.testing.assert_allclose(out[0, 5, 8:16], ramp[:8] / (ramp[8:16] + ramp[:8]), rtol=1e-6)
    np.testing.assert_array_equal(out[0, :, :8], 0.0)
    np.testing.assert_array_equal(out[0, :, 16:], 1.0)


@pytest.mark.slow
def test_grid_memory_is_bounded_by_the_batch_on_a_large_image():
    seen: list[int] = []

    def identity(batch):
        seen.append(len(batch))
        return batch

    image = np.random.default_rng(3).random((1, 2100, 3000), dtype=np.float32)
    out = run_grid(image, identity, TileOptions(256, 32, 4))
    assert max(seen) == 4 and sum(seen) == len(grid_positions(2100, 3000, 256, 32))
    np.testing.assert_allclose(out, image, rtol=1e-6)


def test_none_runs_the_whole_image_once():
    image = np.random.default_rng(4).random((1, 37, 41), dtype=np.float32)
    shapes = []
    out = TILINGS["none"].run(image, lambda b: shapes.append(b.shape) or context_sensitive(b), TileOptions())
    assert shapes == [(1, 1, 37, 41)]
    np.testing.assert_allclose(out, context_sensitive(image[None])[0])


class Strips(TilingPolicy):
    """A toy policy: full-width strips of ``tile`` rows, ``batch`` per call, the last one aligned to the bottom."""

    name = "strips"
    summary = "full-width strips (a test policy)"

    def starts(self, height: int, options: TileOptions) -> list[int]:
        rows = min(options.tile, height)
        return sorted({*range(0, height - rows, rows), height - rows})

    def run(self, image, infer, options, progress=None):
        rows = min(options.tile, image.shape[1])
        out = np.empty_like(image)
        starts = self.starts(image.shape[1], options)
        for first in range(0, len(starts), options.batch):
            group = starts[first:first + options.batch]
            for top, restored in zip(group, infer(np.stack([image[:, t:t + rows] for t in group]))):
                out[:, top:top + rows] = restored
            if progress:
                progress(len(group))
        return out

    def count_tiles(self, height, width, options):
        return len(self.starts(height, options))

    def peak_tile(self, height, width, options):
        return PeakTile(min(options.tile, height), width, options.batch, "strip")


@pytest.fixture
def strips():
    register_tiling(Strips)
    yield TILINGS["strips"]
    del TILINGS["strips"]


def test_a_registered_policy_runs_through_the_restorer_under_the_memory_bound(strips, tmp_path):
    """A policy added in one place: Restorer runs it, counts its tiles and bounds its peak call."""
    from crafted import tiny_onnx
    from dagl.runtime import Restorer
    from dagl.memory import MemoryBudgetError, estimate_peak_bytes

    image = np.random.default_rng(5).random((50, 40), dtype=np.float32)
    wide = np.zeros((50, 400), np.float32)
    # Room for 2 strips of 16 x 40 px, not for 2 strips of 16 x 400 px (the formula written out: 4.5
    # float32 attention matrices of (H*W/16, H*W) per tile, plus 7,700 bytes per pixel).
    need = {w: int(4.5 * 4 * 2 * (16 * w // 16) * 16 * w + 7700 * 2 * 16 * w) for w in (40, 400)}
    assert need == {w: estimate_peak_bytes(16, w, 2) for w in (40, 400)}
    with Restorer(tiny_onnx(tmp_path / "id.onnx"), tiling="strips", tile=16, overlap=0, batch=2,
                  memory_budget=need[40]) as restore:
        assert restore.tiles_for(50, 40) == 4  # rows 0, 16, 32 and 34 (aligned to the bottom)
        done = []
        np.testing.assert_array_equal(restore(image, done.append), image)
        assert done == [2, 2]
        with pytest.raises(MemoryBudgetError, match="2 strip\\(s\\) of 400x16 px"):
            restore(wide)
    with pytest.raises(MemoryBudgetError, match="2 strip\\(s\\) of 8x8 px"):  # refused before loading
        Restorer(tmp_path / "never-read.onnx", tiling="strips", tile=16, overlap=0, batch=2, memory_budget=1)


def test_a_policy_without_its_peak_tile_cannot_be_registered():
    class Unbounded(TilingPolicy):
        name = "unbounded"
        summary = "no memory bound"

        def run(self, image, infer, options, progress=None):
            return infer(image[None])[0]

        def count_tiles(self, height, width, options):
            return 1

    with pytest.raises(TypeError, match="peak_tile"):
        register_tiling(Unbounded)
    assert "unbounded" not in TILINGS


def test_the_tiling_options_list_the_registry():
    from dagl.runtime.cli import main as infer
    from dagl.runtime.evaluate.cli import main as evaluate

    for command in (infer, evaluate):
        (option,) = [p for p in command.params if p.name == "tiling"]
        assert list(option.type.choices) == list(TILINGS) == ["grid", "reference", "none"]


@pytest.mark.parametrize("tile,overlap,batch", [(7, 0, 1), (16, 16, 1), (16, -1, 1), (16, 4, 0)])
def test_tile_options_refuse_what_cannot_tile(tile, overlap, batch):
    """TileOptions checks itself once: every policy and Restorer get settings that work together."""
    with pytest.raises(TilingError, match="need tile >= 8, 0 <= overlap < tile and batch >= 1"):
        TileOptions(tile, overlap, batch)
