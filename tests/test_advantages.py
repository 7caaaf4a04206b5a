import math

import pytest
import torch

from reasoner.advantages import grpo_advantages


def test_hand_computed_group():
    # rewards 1,0,0,0: mean 0.25; sample std = sqrt((0.75^2 + 3 * 0.25^2) / 3) = sqrt(0.25) = 0.5
    adv = grpo_advantages(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), eps=0.0)
    assert torch.allclose(adv, torch.tensor([[1.5, -0.5, -0.5, -0.5]]))


def test_eps_in_denominator():
    adv = grpo_advantages(torch.tensor([[1.0, 0.0]]), eps=1e-4)
    # mean 0.5, sample std = sqrt(2 * 0.25 / 1) = 0.7071
    expected = 0.5 / (math.sqrt(0.5) + 1e-4)
    assert adv[0, 0].item() == pytest.approx(expected, rel=1e-6)
    assert adv[0, 1].item() == pytest.approx(-expected, rel=1e-6)


def test_all_equal_group_gives_zero_and_no_nan():
    adv = grpo_advantages(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0]]))
    assert not torch.isnan(adv).any()
    assert torch.equal(adv[0], torch.zeros(4)) and torch.equal(adv[1], torch.zeros(4))
    assert adv[2].sum().abs().item() < 1e-6 and adv[2, 1].item() > 0


def test_groups_are_independent_and_unscaled_option():
    rewards = torch.tensor([[2.0, 0.0], [10.0, 4.0]])
    adv = grpo_advantages(rewards, scale=False)
    assert torch.allclose(adv, torch.tensor([[1.0, -1.0], [3.0, -3.0]]))


def test_shape_is_checked():
    with pytest.raises(ValueError):
        grpo_advantages(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError):
        grpo_advantages(torch.tensor([[1.0], [0.0]]))
