import re

import pytest
import torch

import dagl
from dagl.tasks.configs import TaskError


def test_four_tasks_are_configurations_of_one_model():
    expected = {"denoise": (1, 16), "jpeg": (1, 16), "demosaic": (3, 32), "real-denoise": (3, 16)}
    assert {name: (c.channels, c.n_resblocks) for name, c in dagl.TASKS.items()} == expected
    assert {type(dagl.create(name)) for name in expected} == {dagl.DAGL}


def test_unknown_task_lists_choices():
    with pytest.raises(ValueError, match="choose one of: denoise, jpeg, demosaic, real-denoise"):
        dagl.get_config("deblur")


def test_parameter_count_matches_contract():
    model = dagl.create("jpeg")
    total = sum(p.numel() for p in model.parameters())
    unused = sum(p.numel() for name, p in model.named_parameters() if ".W." in name)
    assert total == 5_727_426  # 5.73 M with the unused W convs, as the contract states
    assert total - unused == 5_714_370  # 5.71 M without them (12 heads x 1,088)


@pytest.mark.parametrize("task, n_resblocks", [("jpeg", 16), ("demosaic", 32)])
def test_the_main_body_resblocks_share_one_prelu_as_in_the_release(task, n_resblocks):
    model = dagl.create(task)
    main_body = [i for i in range(n_resblocks + 1) if i != n_resblocks // 2]
    shared = model.body[0].body[1].weight
    assert all(model.body[i].body[1].weight is shared for i in main_body)
    mgfam = [block.body[1].weight for stage in (model.body[n_resblocks // 2].RBS1, model.body[n_resblocks // 2].RBS2)
             for block in stage]
    assert len({id(p) for p in mgfam}) == 8 and all(p is not shared for p in mgfam)  # the M-GFAM's keep their own
    assert dagl.create(task).body[0].body[1].weight is not shared  # one per network, not one per process
    # Counted once per block, as a network with one PReLU per block would have it: n_resblocks - 1 more.
    untied = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert untied - sum(p.numel() for p in model.parameters()) == n_resblocks - 1
    # state_dict() still writes the shared slope under every block's key (the release's layout), all equal.
    state = model.state_dict()
    assert model.tied_slope_keys() == [f"body.{i}.body.1.weight" for i in main_body]
    assert all(torch.equal(state[key], shared.detach()) for key in model.tied_slope_keys())


def test_slopes_trained_apart_tie_at_their_mean_into_a_file_the_model_loads():
    """A state whose main-body slopes differ (weights trained before they were shared) is refused on load;
    tied at their mean, in the copies' own dtype, it loads, and nothing else changed."""
    from dagl.network.model import tie_slopes_at_mean
    from dagl.errors import WeightsError

    model = dagl.create("denoise")
    keys = model.tied_slope_keys()
    state = {k: v.clone().half() for k, v in model.state_dict().items()}
    for i, key in enumerate(keys):
        state[key] = torch.tensor([0.05 + 0.01 * i], dtype=torch.float16)
    with pytest.raises(WeightsError, match="PReLU slopes differ"):
        dagl.create("denoise").load_state_dict({k: v.float() for k, v in state.items()})
    tied, before = tie_slopes_at_mean(state, keys)
    assert before == pytest.approx([0.05 + 0.01 * i for i in range(len(keys))], abs=1e-3)
    mean = torch.stack([state[k].float() for k in keys]).mean(0).half()
    assert all(torch.equal(tied[k], mean) and tied[k].dtype == torch.float16 for k in keys)
    assert all(tied[k] is state[k] for k in state if k not in keys)
    dagl.create("denoise").load_state_dict({k: v.float() for k, v in tied.items()})


def test_state_dict_keys_are_the_release_layout():
    keys = set(dagl.create("jpeg").state_dict())
    assert "body.8.c2_3.fc1.0.weight" in keys and "body.8.RBS2.3.body.1.weight" in keys
    assert "body.17.weight" in keys and "body.16.body.2.bias" in keys and "body.18.weight" not in keys
    assert "body.33.weight" in set(dagl.create("demosaic").state_dict())


@pytest.mark.parametrize("task, sigma, message", [
    ("denoise", None, "pass --sigma (15, 25, 50)"),
    ("denoise", 30, "sigma 30 is not one the paper trains for 'denoise'"),
    ("jpeg", 25, "--sigma applies to --task denoise only, not 'jpeg'"),
])
def test_one_sigma_rule_refuses_with_one_user_error(task, sigma, message):
    with pytest.raises(TaskError, match=re.escape(message)) as caught:
        dagl.get_config(task).check_sigma(sigma)
    assert caught.value.exit_code == 2


def test_sigma_rule_passes_valid_variants_through():
    assert dagl.get_config("denoise").check_sigma(25) == 25
    assert dagl.get_config("jpeg").check_sigma(None) is None
