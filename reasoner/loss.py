"""Policy and value losses. Pure functions of tensors; shapes are (B, T): B sequences, T
completion tokens.

The clipped surrogate (PPO, Schulman et al. 2017), as a loss to minimise, per token t:

    ratio_t  = exp(logp_t - old_logp_t)                               # pi_theta / pi_old
    pg_t     = max(-A * ratio_t, -A * clip(ratio_t, 1 - eps_low, 1 + eps_high))
    pg_t     = min(pg_t, -A * dual_clip)      when A < 0 and dual_clip > 1 (Ye et al. 2020)

plus ``beta`` times a per-token estimate of KL(pi_theta || pi_ref) when the KL is a loss term
(GRPO, DeepSeekMath eq. 3), with the estimators of Schulman (http://joschu.net/blog/kl-approx.html),
d = ref_logp - logp on tokens sampled from pi_theta:

    k1 = -d                 unbiased, can be negative
    k2 = d^2 / 2            biased, low variance, >= 0
    k3 = exp(d) - d - 1     unbiased, >= 0 (the GRPO paper's choice)

Aggregation over tokens (``aggregate``), with m the completion mask:

    seq-mean-token-mean      mean_i [ sum_t m x / sum_t m ]          GRPO (DeepSeekMath)
    token-mean               sum_i sum_t m x / sum_i sum_t m          DAPO (Yu et al. 2025)
    seq-mean-token-sum-norm  sum_i sum_t m x / (B * max_tokens)       Dr. GRPO (Liu et al. 2025)

Truncated importance sampling (TIS, Yao et al. 2025, "Your efficient RL framework secretly
brings you off-policy RL training"): when the sampler's probabilities differ from the learner's
(other kernels, lower precision), ``pg_t`` is multiplied by ``min(pi_old_t / pi_sampler_t, C)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")
AGGREGATIONS = ("seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm")


def token_logprobs(
    logits: torch.Tensor,  # (B, T, V) logits that predict each of `tokens`
    tokens: torch.Tensor,  # (B, T) token ids
    temperature: float = 1.0,
) -> torch.Tensor:  # (B, T) log pi(token) under softmax(logits / temperature)
    logits = logits.float() / temperature
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def token_entropy(
    logits: torch.Tensor,  # (B, T, V)
    temperature: float = 1.0,
) -> torch.Tensor:  # (B, T) entropy of softmax(logits / temperature) in nats (differentiable)
    logits = logits.float() / temperature
    logz = torch.logsumexp(logits, dim=-1)
    probs = torch.exp(logits - logz.unsqueeze(-1))
    return logz - (probs * logits).sum(-1)


def kl_estimate(
    logp: torch.Tensor,  # (B, T) log pi_theta of the sampled tokens
    ref_logp: torch.Tensor,  # (B, T) log pi_ref of the same tokens
    estimator: str = "k3",
) -> torch.Tensor:  # (B, T) per-token estimate of KL(pi_theta || pi_ref)
    d = ref_logp - logp
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d * d
    if estimator == "k3":
        return torch.exp(d) - d - 1
    raise ValueError(f"unknown KL estimator {estimator!r} (known: {', '.join(KL_ESTIMATORS)})")


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:  # (B, T), >= 0
    return kl_estimate(logp, ref_logp, "k3")


class Surrogate(NamedTuple):
    loss: torch.Tensor  # (B, T) per-token clipped surrogate loss
    low_clipped: torch.Tensor  # (B, T) bool: ratio < 1 - eps_low with A < 0 (no gradient)
    high_clipped: torch.Tensor  # (B, T) bool: ratio > 1 + eps_high with A > 0 (no gradient)
    dual_clipped: torch.Tensor  # (B, T) bool: the dual clip bounded a negative-advantage token


def clipped_surrogate(
    logp: torch.Tensor,  # (B, T) log pi_theta (requires grad)
    old_logp: torch.Tensor,  # (B, T) log pi of the policy that sampled the tokens
    advantages: torch.Tensor,  # (B,) one advantage per sequence, or (B, T) per token
    clip_low: float,
    clip_high: float | None = None,  # None: same as clip_low
    dual_clip: float = 0.0,  # > 1 caps the loss of negative-advantage tokens at -A * dual_clip
) -> Surrogate:
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    clip_high = clip_low if clip_high is None else clip_high
    ratio = torch.exp(logp - old_logp)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    loss = torch.maximum(pg_loss1, pg_loss2)
    dual = torch.zeros_like(loss, dtype=torch.bool)
    if dual_clip > 1:
        pg_loss3 = -advantages * dual_clip
        dual = (advantages < 0) & (loss > pg_loss3)
        loss = torch.where(advantages < 0, torch.minimum(loss, pg_loss3), loss)
    low = (ratio < 1 - clip_low) & (advantages < 0)
    high = (ratio > 1 + clip_high) & (advantages > 0)
    return Surrogate(loss, low, high, dual)


def aggregate(
    values: torch.Tensor,  # (B, T)
    mask: torch.Tensor,  # (B, T) 1 for completion tokens, 0 for padding
    mode: str = "seq-mean-token-mean",
    num_sequences: int | None = None,  # sequences in the whole batch (this may be one micro-batch)
    num_tokens: int | None = None,  # completion tokens in the whole batch (token-mean)
    max_tokens: int | None = None,  # the generation budget (seq-mean-token-sum-norm)
) -> torch.Tensor:  # () this micro-batch's share of the batch loss
    mask = mask.to(values.dtype)
    b = num_sequences if num_sequences is not None else values.shape[0]
    if mode == "seq-mean-token-mean":
        return ((values * mask).sum(-1) / mask.sum(-1).clamp(min=1)).sum() / b
    if mode == "token-mean":
        n = num_tokens if num_tokens is not None else mask.sum().clamp(min=1)
        return (values * mask).sum() / n
    if mode == "seq-mean-token-sum-norm":
        t = max_tokens if max_tokens is not None else values.shape[1]
        return (values * mask).sum() / (b * t)
    raise ValueError(f"unknown loss aggregation {mode!r} (known: {', '.join(AGGREGATIONS)})")


def seq_mean_token_mean(
    values: torch.Tensor,  # (B, T)
    mask: torch.Tensor,  # (B, T)
    num_sequences: int | None = None,
) -> torch.Tensor:  # ()
    return aggregate(values, mask, "seq-mean-token-mean", num_sequences)


class PolicyLossOutput(NamedTuple):
    loss: torch.Tensor  # () what to backpropagate
    policy_loss: torch.Tensor  # () the surrogate part
    kl: torch.Tensor  # () token-mean KL estimate to the reference (0 when beta == 0)
    clip_low: torch.Tensor  # () fraction of tokens clipped below
    clip_high: torch.Tensor  # () fraction of tokens clipped above
    clip_dual: torch.Tensor  # () fraction of tokens bounded by the dual clip


def policy_loss(
    logp: torch.Tensor,  # (B, T) log pi_theta of completion tokens (requires grad)
    old_logp: torch.Tensor,  # (B, T) log pi_old
    advantages: torch.Tensor,  # (B,) per sequence or (B, T) per token
    mask: torch.Tensor,  # (B, T) completion-token mask (0 also for tokens left out of the loss)
    clip_low: float = 0.2,
    clip_high: float | None = None,
    dual_clip: float = 0.0,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,  # (B, T) log pi_ref; required when beta > 0
    kl_estimator: str = "k3",
    agg: str = "seq-mean-token-mean",
    num_sequences: int | None = None,
    num_tokens: int | None = None,
    max_tokens: int | None = None,
    is_weights: torch.Tensor | None = None,  # (B, T) importance weights on the surrogate (TIS)
) -> PolicyLossOutput:
    surrogate = clipped_surrogate(logp, old_logp, advantages, clip_low, clip_high, dual_clip)
    pg = surrogate.loss
    if is_weights is not None:
        pg = pg * is_weights.detach()
    per_token = pg
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp")
        kl = kl_estimate(logp, ref_logp, kl_estimator)
        per_token = pg + beta * kl
    else:
        kl = torch.zeros_like(pg)
    loss = aggregate(per_token, mask, agg, num_sequences, num_tokens, max_tokens)
    with torch.no_grad():
        fmask = mask.float()
        n = fmask.sum().clamp(min=1)
        return PolicyLossOutput(
            loss=loss,
            policy_loss=aggregate(pg.detach(), mask, agg, num_sequences, num_tokens, max_tokens),
            kl=(kl.detach() * fmask).sum() / n,
            clip_low=(surrogate.low_clipped.float() * fmask).sum() / n,
            clip_high=(surrogate.high_clipped.float() * fmask).sum() / n,
            clip_dual=(surrogate.dual_clipped.float() * fmask).sum() / n,
        )


def grpo_loss(
    logp: torch.Tensor,  # (B, T)
    old_logp: torch.Tensor,  # (B, T)
    advantages: torch.Tensor,  # (B,)
    mask: torch.Tensor,  # (B, T)
    clip_eps: float = 0.2,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    num_sequences: int | None = None,
    is_weights: torch.Tensor | None = None,
) -> PolicyLossOutput:
    """The DeepSeekMath GRPO loss: symmetric clip, k3 KL in the loss, seq-mean-token-mean."""
    return policy_loss(logp, old_logp, advantages, mask, clip_eps, clip_eps, 0.0, beta, ref_logp, "k3",
                       "seq-mean-token-mean", num_sequences, is_weights=is_weights)


def value_loss(
    values: torch.Tensor,  # (B, T) critic's current V(s_t) (requires grad)
    old_values: torch.Tensor,  # (B, T) V(s_t) when the batch was sampled
    returns: torch.Tensor,  # (B, T) GAE targets
    mask: torch.Tensor,  # (B, T)
    clip: float = 0.2,  # the new value may move at most this far from the old one (0: no clip)
    num_tokens: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # (loss, fraction of tokens where the clipped term won)
    """``0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)``, token-mean."""
    loss1 = (values - returns) ** 2
    if clip > 0:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        loss2 = (clipped - returns) ** 2
        per_token = 0.5 * torch.maximum(loss1, loss2)
        clipfrac = ((loss2 > loss1).float() * mask).sum() / mask.sum().clamp(min=1)
    else:
        per_token = 0.5 * loss1
        clipfrac = torch.zeros(())
    return aggregate(per_token, mask, "token-mean", num_tokens=num_tokens), clipfrac.detach()
