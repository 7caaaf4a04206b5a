import math

import pytest
import torch

from reasoner.advantages import gae, grpo_advantages, mean_std, whiten


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
    adv = grpo_advantages(rewards, scale="none")
    assert torch.allclose(adv, torch.tensor([[1.0, -1.0], [3.0, -3.0]]))


def test_batch_scale_divides_by_the_batch_std():
    rewards = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # centred: [0.5, -0.5], [0, 0]; batch sample std of [1, 0, 1, 1] = 0.5
    adv = grpo_advantages(rewards, scale="batch", eps=0.0)
    assert torch.allclose(adv, torch.tensor([[1.0, -1.0], [0.0, 0.0]]))


def test_gae_hand_computed():
    # one sequence of 3 tokens, reward 1 on the last token; values 0.5, 0.6, 0.7; gamma 0.9, lam 0.8
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7, 9.9]])  # the 9.9 sits on padding and must be ignored
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    d2 = 1.0 - 0.7                 # last token: r + gamma * 0 - V
    d1 = 0.0 + 0.9 * 0.7 - 0.6     # 0.03
    d0 = 0.0 + 0.9 * 0.6 - 0.5     # 0.04
    a2 = d2
    a1 = d1 + 0.72 * a2
    a0 = d0 + 0.72 * a1
    assert adv[0].tolist() == pytest.approx([a0, a1, a2, 0.0])
    assert ret[0].tolist() == pytest.approx([a0 + 0.5, a1 + 0.6, a2 + 0.7, 0.0])


def test_gae_with_lambda_one_and_gamma_one_is_monte_carlo():
    rewards = torch.tensor([[0.1, 0.2, 1.0]])
    values = torch.tensor([[0.3, 0.2, 0.1]])
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert ret[0].tolist() == pytest.approx([1.3, 1.2, 1.0])  # the reward-to-go
    assert adv[0].tolist() == pytest.approx([1.0, 1.0, 0.9])


def test_whiten_over_masked_entries():
    x = torch.tensor([[1.0, 3.0, 100.0], [5.0, 7.0, 100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 0]])
    w = whiten(x, mask, *mean_std(x[mask.bool()]))
    # masked entries 1, 3, 5, 7: mean 4, population std sqrt(5)
    assert w[0, :2].tolist() == pytest.approx([-3 / math.sqrt(5), -1 / math.sqrt(5)], rel=1e-5)
    assert w[:, 2].tolist() == [0.0, 0.0]
    assert (w * mask).sum().item() == pytest.approx(0.0, abs=1e-5)


def test_shape_is_checked():
    with pytest.raises(ValueError):
        grpo_advantages(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError):
        grpo_advantages(torch.tensor([[1.0], [0.0]]))
