"""Losses against hand computations. Each comment shows the arithmetic."""

import math

import pytest
import torch

from reasoner.loss import (POLICY_LOSSES, aggregate, clipped_surrogate, dapo_loss, dr_grpo_loss, grpo_loss, kl_estimate,
                           ppo_loss, token_entropy, token_logprobs, value_loss)


def kl_k3(logp, ref_logp):
    return kl_estimate(logp, ref_logp, "k3")


def test_token_logprobs_and_temperature():
    logits = torch.tensor([[[0.0, math.log(3.0)]]])  # softmax = [1/4, 3/4]
    assert token_logprobs(logits, torch.tensor([[1]])).item() == pytest.approx(math.log(0.75))
    # temperature 2: logits / 2 = [0, log(3)/2] -> softmax = [1, sqrt 3] / (1 + sqrt 3)
    expected = math.log(math.sqrt(3) / (1 + math.sqrt(3)))
    assert token_logprobs(logits, torch.tensor([[1]]), temperature=2.0).item() == pytest.approx(expected)


def test_entropy_of_uniform_and_peaked():
    assert token_entropy(torch.zeros(1, 1, 4)).item() == pytest.approx(math.log(4))
    assert token_entropy(torch.tensor([[[100.0, 0.0, 0.0]]])).item() == pytest.approx(0.0, abs=1e-6)


def test_k3_values():
    # ref_logp - logp = d: k3 = e^d - d - 1
    logp = torch.tensor([[math.log(0.5), math.log(0.2), math.log(0.3)]])
    ref = torch.tensor([[math.log(0.5), math.log(0.4), math.log(0.1)]])
    expected = [0.0, 2.0 - math.log(2.0) - 1, 1 / 3 + math.log(3.0) - 1]
    assert kl_k3(logp, ref)[0].tolist() == pytest.approx(expected)
    assert (kl_k3(torch.randn(4, 5), torch.randn(4, 5)) >= 0).all()


def test_k3_is_unbiased_for_kl_on_samples():
    # sample tokens from p; the mean of k3 estimates KL(p || q)
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.2, 0.5, 0.3])
    exact = (p * (p / q).log()).sum().item()
    torch.manual_seed(0)
    tokens = torch.multinomial(p, 200_000, replacement=True)
    estimate = kl_k3(p.log()[tokens], q.log()[tokens]).mean().item()
    assert estimate == pytest.approx(exact, rel=0.02)


def test_clip_active_above():
    # A = +1, ratio = e (log-ratio 1) > 1.2: the clipped term -A*1.2 = -1.2 is the max; no gradient flows
    logp = torch.tensor([[1.0]], requires_grad=True)
    loss, low, high, _ = clipped_surrogate(logp, torch.tensor([[0.0]]), torch.tensor([1.0]), clip_low=0.2)
    assert loss.item() == pytest.approx(-1.2)
    assert high.item() and not low.item()
    loss.sum().backward()
    assert logp.grad.item() == 0.0


def test_clip_active_below():
    # A = -1, ratio = 0.5 < 0.8: max(-A*0.5, -A*0.8) = max(0.5, 0.8) = 0.8, clipped, no gradient
    logp = torch.tensor([[math.log(0.5)]], requires_grad=True)
    loss, low, high, _ = clipped_surrogate(logp, torch.tensor([[0.0]]), torch.tensor([-1.0]), clip_low=0.2)
    assert loss.item() == pytest.approx(0.8)
    assert low.item() and not high.item()
    loss.sum().backward()
    assert logp.grad.item() == 0.0


def test_clip_inactive_in_the_helpful_direction():
    # A = +1, ratio = 0.5: max(-0.5, -0.8) = -0.5, unclipped: the gradient d(-A*ratio)/dlogp = -ratio = -0.5
    logp = torch.tensor([[math.log(0.5)]], requires_grad=True)
    loss, low, high, _ = clipped_surrogate(logp, torch.tensor([[0.0]]), torch.tensor([1.0]), clip_low=0.2)
    assert loss.item() == pytest.approx(-0.5) and not low.item() and not high.item()
    loss.sum().backward()
    assert logp.grad.item() == pytest.approx(-0.5)


def test_seq_mean_token_mean_with_masks():
    values = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, 99.0, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    # sequence means 2 and 4 -> 3; padding (99) never counts
    assert aggregate(values, mask, "seq-mean-token-mean").item() == pytest.approx(3.0)
    # as one micro-batch of a batch of 4 sequences: (2 + 4) / 4
    assert aggregate(values, mask, "seq-mean-token-mean", num_sequences=4).item() == pytest.approx(1.5)


def test_grpo_loss_hand_computed():
    # two sequences, lengths 2 and 1 (third token masked); on-policy (ratio 1); beta = 0.1
    logp = torch.tensor([[math.log(0.5), math.log(0.25), 0.0], [math.log(0.8), 0.0, 0.0]], requires_grad=True)
    ref = torch.tensor([[math.log(0.5), math.log(0.5), 0.0], [math.log(0.4), 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    adv = torch.tensor([2.0, -1.0])
    out = grpo_loss(logp=logp, old_logp=logp.detach(), advantages=adv, mask=mask, clip_low=0.2, beta=0.1, ref_logp=ref)
    # k3 per token: seq 1: [0, 2 - ln2 - 1]; seq 2: [0.5 + ln2 - 1]
    k_a, k_b = 1 - math.log(2), 0.5 + math.log(2) - 1
    seq1 = ((-2.0 + 0.0) + (-2.0 + 0.1 * k_a)) / 2
    seq2 = 1.0 + 0.1 * k_b
    assert out.loss.item() == pytest.approx((seq1 + seq2) / 2, rel=1e-6)
    assert out.policy_loss.item() == pytest.approx((-2.0 + 1.0) / 2)
    assert out.kl.item() == pytest.approx((0 + k_a + k_b) / 3, rel=1e-6)
    assert out.clip_low.item() == 0 and out.clip_high.item() == 0
    out.loss.backward()
    # d/dlogp of -A*ratio at ratio 1 is -A; of beta*k3 is beta*(1 - e^(ref-logp)); divided by length and by B=2
    g = logp.grad
    assert g[0, 0].item() == pytest.approx((-2.0 + 0.1 * (1 - 1.0)) / 2 / 2)
    assert g[0, 1].item() == pytest.approx((-2.0 + 0.1 * (1 - 2.0)) / 2 / 2)
    assert g[0, 2].item() == 0.0 and g[1, 1].item() == 0.0
    assert g[1, 0].item() == pytest.approx((1.0 + 0.1 * (1 - 0.5)) / 1 / 2)


def test_beta_zero_needs_no_reference_and_beta_positive_does():
    logp = torch.zeros(1, 2)
    out = grpo_loss(logp=logp, old_logp=logp, advantages=torch.tensor([1.0]), mask=torch.ones(1, 2), beta=0.0)
    assert out.kl.item() == 0.0
    with pytest.raises(ValueError):
        grpo_loss(logp=logp, old_logp=logp, advantages=torch.tensor([1.0]), mask=torch.ones(1, 2), beta=0.1)


def test_clip_higher_is_asymmetric():
    # DAPO: eps_low 0.2, eps_high 0.28. A = +1, ratio 1.25: inside [0.8, 1.28] -> unclipped, loss -1.25
    logp = torch.tensor([[math.log(1.25)]])
    out = clipped_surrogate(logp, torch.zeros(1, 1), torch.tensor([1.0]), clip_low=0.2, clip_high=0.28)
    assert out.loss.item() == pytest.approx(-1.25) and not out.high_clipped.item()
    # the symmetric clip would cap it at 1.2
    out = clipped_surrogate(logp, torch.zeros(1, 1), torch.tensor([1.0]), clip_low=0.2, clip_high=0.2)
    assert out.loss.item() == pytest.approx(-1.2) and out.high_clipped.item()


def test_dual_clip_bounds_negative_advantages():
    # A = -1, ratio = 5: max(-A*5, -A*1.2) = 5; the dual clip c = 3 caps it at -A*3 = 3, no gradient
    logp = torch.tensor([[math.log(5.0)]], requires_grad=True)
    out = clipped_surrogate(logp, torch.zeros(1, 1), torch.tensor([-1.0]), clip_low=0.2, dual_clip=3.0)
    assert out.loss.item() == pytest.approx(3.0) and out.dual_clipped.item()
    out.loss.sum().backward()
    assert logp.grad.item() == 0.0
    # positive advantages are untouched by the dual clip: A = +1, ratio 5 -> clipped at 1.2 -> -1.2
    out = clipped_surrogate(torch.tensor([[math.log(5.0)]]), torch.zeros(1, 1), torch.tensor([1.0]), 0.2, dual_clip=3.0)
    assert out.loss.item() == pytest.approx(-1.2) and not out.dual_clipped.item()


def test_kl_estimators_on_known_distributions():
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.4, 0.4, 0.2])
    exact = (p * (p / q).log()).sum().item()
    torch.manual_seed(0)
    tokens = torch.multinomial(p, 400_000, replacement=True)
    lp, lq = p.log()[tokens], q.log()[tokens]
    # k1 and k3 are unbiased; k2 is biased but close for nearby distributions
    assert kl_estimate(lp, lq, "k1").mean().item() == pytest.approx(exact, rel=0.05)
    assert kl_estimate(lp, lq, "k3").mean().item() == pytest.approx(exact, rel=0.05)
    assert kl_estimate(lp, lq, "k2").mean().item() == pytest.approx(exact, rel=0.25)
    # exact per-token values: d = log q - log p = log(0.8)
    d = math.log(0.4 / 0.5)
    one = (torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.4)]))
    assert kl_estimate(*one, "k1").item() == pytest.approx(-d)
    assert kl_estimate(*one, "k2").item() == pytest.approx(d * d / 2)
    assert kl_estimate(*one, "k3").item() == pytest.approx(math.exp(d) - d - 1)
    with pytest.raises(ValueError):
        kl_estimate(*one, "k9")


def test_kl_estimator_gradients():
    # d/dlogp of k1 = 1; of k2 = (logp - ref); of k3 = 1 - exp(ref - logp)
    ref = torch.tensor([math.log(0.4)])
    for kind, expected in (("k1", 1.0), ("k2", math.log(0.5 / 0.4)), ("k3", 1 - 0.4 / 0.5)):
        logp = torch.tensor([math.log(0.5)], requires_grad=True)
        kl_estimate(logp, ref, kind).sum().backward()
        assert logp.grad.item() == pytest.approx(expected, rel=1e-6), kind


def test_aggregations_with_different_lengths():
    # sequence 1 has 3 tokens summing to 6, sequence 2 has 1 token equal to 4
    values = torch.tensor([[1.0, 2.0, 3.0, 7.0], [4.0, 7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    # seq-mean-token-mean: (6/3 + 4/1) / 2 = 3
    assert aggregate(values, mask, "seq-mean-token-mean").item() == pytest.approx(3.0)
    # token-mean: (6 + 4) / 4 tokens = 2.5: long sequences weigh more
    assert aggregate(values, mask, "token-mean").item() == pytest.approx(2.5)
    # seq-mean-token-sum-norm with a budget of 8 tokens: (6 + 4) / (2 * 8) = 0.625
    assert aggregate(values, mask, "seq-mean-token-sum-norm", max_tokens=8).item() == pytest.approx(0.625)
    # as one micro-batch of a batch of 4 sequences and 10 tokens
    assert aggregate(values, mask, "token-mean", num_tokens=10).item() == pytest.approx(1.0)
    assert aggregate(values, mask, "seq-mean-token-sum-norm", num_sequences=4, max_tokens=8).item() == \
        pytest.approx(10 / 32)


def test_token_mean_variant_with_the_k1_estimator():
    logp = torch.tensor([[math.log(0.5), math.log(0.5)], [math.log(0.5), 0.0]])
    ref = torch.tensor([[math.log(0.25), math.log(0.25)], [math.log(0.25), 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    out = dapo_loss(logp=logp, old_logp=logp, advantages=torch.zeros(2), mask=mask, beta=1.0, ref_logp=ref,
                    kl_estimator="k1")
    # advantages 0: only beta * k1 = log 2 on each of 3 tokens, token-mean = log 2
    assert out.loss.item() == pytest.approx(math.log(2))
    assert out.kl.item() == pytest.approx(math.log(2))


def test_value_loss_clip_cases():
    old = torch.tensor([[0.0, 0.0]])
    ret = torch.tensor([[1.0, 1.0]])
    mask = torch.ones(1, 2)
    # token 1: V = 0.1 moves 0.1 (inside the clip): 0.5 * (0.9)^2
    # token 2: V = 0.9 moves 0.9 > 0.2: clipped value 0.2 is further from 1 -> 0.5 * 0.8^2 wins (pessimistic)
    values = torch.tensor([[0.1, 0.9]], requires_grad=True)
    loss, frac = value_loss(values, old, ret, mask, clip=0.2)
    assert loss.item() == pytest.approx((0.5 * 0.81 + 0.5 * 0.64) / 2)
    assert frac.item() == pytest.approx(0.5)
    loss.backward()
    assert values.grad[0, 1].item() == 0.0  # the clipped branch carries no gradient
    assert values.grad[0, 0].item() == pytest.approx((0.1 - 1.0) / 2)
    unclipped, _ = value_loss(values.detach(), old, ret, mask, clip=0.0)
    assert unclipped.item() == pytest.approx((0.5 * 0.81 + 0.5 * 0.01) / 2)


def _two_sequences():
    # on-policy (ratio 1): the surrogate of a token is -A. Lengths 3 and 1, advantages 1 and 2
    logp = torch.zeros(2, 4, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    return dict(logp=logp, old_logp=logp.detach(), advantages=torch.tensor([1.0, 2.0]), mask=mask)


def test_one_variant_per_aggregation():
    assert set(POLICY_LOSSES) == {"seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"}
    assert POLICY_LOSSES["seq-mean-token-mean"] is grpo_loss
    # per-token surrogates: [-1, -1, -1] and [-2]
    assert grpo_loss(**_two_sequences()).loss.item() == pytest.approx((-1 + -2) / 2)  # mean of sequence means
    assert dapo_loss(**_two_sequences()).loss.item() == pytest.approx(-5 / 4)  # mean over 4 tokens
    assert dr_grpo_loss(**_two_sequences(), max_tokens=4).loss.item() == pytest.approx(-5 / (2 * 4))  # / (B * budget)


def test_the_objective_holds_the_entropy_bonus_and_the_world_size():
    entropy = torch.full((2, 4), 2.0)
    # token-mean entropy 2 whatever the variant: -1.5 - 0.1 * 2 = -1.7
    out = grpo_loss(**_two_sequences(), entropy=entropy, entropy_coef=0.1)
    assert out.loss.item() == pytest.approx(-1.7) and out.total.item() == pytest.approx(-1.7)
    assert out.policy_loss.item() == pytest.approx(-1.5)  # the surrogate part alone
    # two processes: DDP averages their gradients, so each backpropagates 2x its share; the logs keep the share
    out = grpo_loss(**_two_sequences(), entropy=entropy, entropy_coef=0.1, world_size=2)
    assert out.loss.item() == pytest.approx(-3.4) and out.total.item() == pytest.approx(-1.7)
    with pytest.raises(ValueError):
        grpo_loss(**_two_sequences(), entropy_coef=0.1)


def test_ppo_objective_adds_the_value_loss():
    # A = 0 everywhere: the policy part is 0; the value loss is the one of test_value_loss_clip_cases
    logp = torch.zeros(1, 2, requires_grad=True)
    values = torch.tensor([[0.1, 0.9]], requires_grad=True)
    out = ppo_loss(aggregation="token-mean", logp=logp, old_logp=logp.detach(), advantages=torch.zeros(1, 2),
                   mask=torch.ones(1, 2), values=values, old_values=torch.zeros(1, 2), returns=torch.ones(1, 2),
                   vf_coef=0.5, value_clip=0.2)
    vloss = (0.5 * 0.81 + 0.5 * 0.64) / 2
    assert out.value_loss.item() == pytest.approx(vloss) and out.value_clip_frac.item() == pytest.approx(0.5)
    assert out.loss.item() == pytest.approx(0.5 * vloss) and out.policy.loss.item() == 0.0
