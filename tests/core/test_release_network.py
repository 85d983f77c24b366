"""Our files in the authors' own network: they load strictly there and give the same image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import dagl
from dagl.data.datasets import add_protocol_noise
from dagl.tasks.configs import get_config
from dagl.weights.checkpoints import read_state_dict, save_safetensors
from release_network import RR

#: Main-body ResBlocks of a 16-ResBlock network: body.{n/2} = body.8 is the M-GFAM stack.
MAIN_BODY = [*range(8), *range(9, 17)]


def release_network(task: str) -> RR:
    config = get_config(task)
    return RR(n_resblocks=config.n_resblocks, n_colors=config.channels).eval()


def load_strictly(network: RR, path) -> RR:
    """Load right before use: the main body's slope is one object shared by every RR in the process."""
    network.load_state_dict({k: v.float() for k, v in read_state_dict(path).items()}, strict=True)
    return network


def test_the_transcription_shares_one_prelu_across_the_main_body_as_the_release_does():
    """Not assumed: the release's positional call puts nn.PReLU() into ``bias`` and ``act`` keeps its default."""
    network = release_network("jpeg")
    shared = network.body[0].body[1].weight
    assert all(network.body[i].body[1].weight is shared for i in MAIN_BODY)
    assert all(network.body[i].body[0].bias is not None for i in MAIN_BODY)  # the PReLU as ``bias`` is truthy
    mgfam = [block.body[1].weight for stage in (network.body[8].RBS1, network.body[8].RBS2) for block in stage]
    assert len({id(p) for p in mgfam}) == 8 and all(p is not shared for p in mgfam)  # act=nn.PReLU() by keyword
    # A default argument is one object per process: another RR, even demosaic's, holds the same slope.
    assert release_network("demosaic").body[20].body[1].weight is shared
    state = network.state_dict()
    assert all(f"body.{i}.body.1.weight" in state for i in MAIN_BODY)  # the shared module is written under each path


def test_the_transcription_keeps_the_last_copy_of_differing_slopes_which_is_why_dagl_refuses_them():
    state = dagl.create("jpeg").state_dict()
    state = {**{k: v.clone() for k, v in state.items()}, "add_mean.weight": torch.eye(3).view(3, 3, 1, 1),
             "add_mean.bias": torch.tensor([0.4488, 0.4371, 0.4040])}
    for n, i in enumerate(MAIN_BODY):
        state[f"body.{i}.body.1.weight"] = torch.tensor([0.1 + 0.02 * n])
    network = release_network("jpeg")
    network.load_state_dict(state, strict=True)  # no error in the authors' network...
    assert network.body[0].body[1].weight.item() == pytest.approx(0.4)  # ...and only the last copy survives
    with pytest.raises(dagl.WeightsError, match="slopes differ"):
        dagl.create("jpeg").load_state_dict(state)


@pytest.mark.slow
def test_the_transcription_computes_what_dagl_computes_on_a_release_checkpoint(official_checkpoint):
    """The check below is only as good as the transcription: on a release-format checkpoint it must agree."""
    path = official_checkpoint("jpeg")
    x = torch.rand(2, 1, 30, 34, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = load_strictly(release_network("jpeg"), path)(x)
        ours = dagl.load("jpeg", weights=path)(x)
    assert theirs.abs().max() > 0.1  # a real output, not a zero residual
    assert (theirs - ours).abs().max().item() <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("task", ["jpeg", "demosaic"])
def test_every_file_we_write_loads_strictly_into_the_release_network(tmp_path, task):
    path = save_safetensors(dagl.create(task), tmp_path / "w.safetensors", fp16=True)
    network = load_strictly(release_network(task), path)
    assert torch.equal(network.add_mean.bias, torch.tensor([0.4488, 0.4371, 0.4040]).half().float())
    dagl.load(task, weights=path)  # and still into ours, which skips add_mean


def _shipped_case(datasets_dir, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(network input, clean image) in [0, 1] of a real crop, 62x78 (neither side a multiple of the query
    stride): Classic5 barbara's MATLAB q10 JPEG for jpeg, BSD68 test001 with the protocol's sigma-25 noise
    (drawn for the whole image, as dagl-eval does) for denoise."""
    crop = (slice(200, 262), slice(150, 228)) if task == "jpeg" else (slice(100, 162), slice(200, 278))
    if task == "jpeg":
        degraded = np.asarray(Image.open(datasets_dir / "classic5/jpeg_q10/barbara.jpeg").convert("L"), np.float32)
        clean = np.asarray(Image.open(datasets_dir / "classic5/barbara.bmp").convert("L"), np.float32) / 255
        return degraded[crop] / 255, clean[crop]
    clean = np.asarray(Image.open(datasets_dir / "bsd68/test001.png").convert("L"), np.float32) / 255
    return add_protocol_noise(clean, 25)[crop], clean[crop]


@pytest.mark.slow
@pytest.mark.parametrize(("task", "sigma"), [("jpeg", None), ("denoise", 25)])
def test_the_shipped_weights_give_the_same_image_in_the_release_network(datasets_dir, task, sigma):
    path = dagl.shipped_weights(task, sigma)
    degraded, clean = _shipped_case(datasets_dir, task)
    x = torch.from_numpy(degraded)[None, None]
    with torch.no_grad():
        theirs = load_strictly(release_network(task), path)(x).clamp(0, 1)
        ours = dagl.load(task, sigma=sigma)(x).clamp(0, 1)
    assert (theirs - ours).abs().max().item() <= 1e-5  # >= 100 dB of one output against the other

    def psnr(image: torch.Tensor) -> float:
        return float(10 * np.log10(1 / np.mean((image[0, 0].numpy() - clean) ** 2)))

    # trained weights: the release's network restores with them too (denoise: by far more than a JPEG's artefacts)
    assert psnr(theirs) > psnr(x.clamp(0, 1)) + (0.3 if task == "jpeg" else 3.0)
