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

The variants are a table, ``POLICY_LOSSES`` (``loss_agg`` -> function): ``grpo_loss``,
``dapo_loss``, ``dr_grpo_loss``; each is keyword-only and returns the whole objective of one
micro-batch (surrogate, KL term, entropy bonus, times the number of processes) with its
statistics. ``ppo_loss`` adds the clipped value loss to the variant it names.

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


class PolicyLossOutput(NamedTuple):
    loss: torch.Tensor  # () what to backpropagate: this micro-batch's share of the objective, x world_size
    total: torch.Tensor  # () the same share of the objective, not scaled (what the logs show), detached
    policy_loss: torch.Tensor  # () the surrogate part
    kl: torch.Tensor  # () token-mean KL estimate to the reference (0 when beta == 0)
    clip_low: torch.Tensor  # () fraction of tokens clipped below
    clip_high: torch.Tensor  # () fraction of tokens clipped above
    clip_dual: torch.Tensor  # () fraction of tokens bounded by the dual clip


def _policy_objective(
    reduce,  # (B, T) -> () the variant's aggregation over tokens and sequences
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float | None,
    dual_clip: float,
    beta: float,
    ref_logp: torch.Tensor | None,
    kl_estimator: str,
    is_weights: torch.Tensor | None,
    entropy: torch.Tensor | None,
    entropy_coef: float,
    num_tokens: int | None,
    world_size: int,
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
    loss = reduce(per_token)
    if entropy_coef > 0:  # the bonus is a token mean whatever the variant's aggregation
        if entropy is None:
            raise ValueError("entropy_coef > 0 needs entropy")
        loss = loss - entropy_coef * aggregate(entropy, mask, "token-mean", num_tokens=num_tokens)
    with torch.no_grad():
        fmask = mask.float()
        n = fmask.sum().clamp(min=1)
        stats = dict(
            total=loss.detach(),
            policy_loss=reduce(pg.detach()),
            kl=(kl.detach() * fmask).sum() / n,
            clip_low=(surrogate.low_clipped.float() * fmask).sum() / n,
            clip_high=(surrogate.high_clipped.float() * fmask).sum() / n,
            clip_dual=(surrogate.dual_clipped.float() * fmask).sum() / n,
        )
    # DDP averages gradients over processes: x world_size makes them the gradient of the global objective
    return PolicyLossOutput(loss=loss * world_size, **stats)


# The policy-loss variants share one signature (keyword-only); each is the whole objective:
#
#   L = agg_variant(pg_t * w_t + beta * KL_t) - entropy_coef * token_mean(H_t)
#
# with pg_t the clipped surrogate, w_t the TIS weights (1 without), KL_t the per-token estimate.
#   logp, old_logp, ref_logp, is_weights, entropy, mask: (B, T); advantages: (B,) or (B, T)
#   num_sequences, num_tokens: sequences and loss tokens of the whole minibatch over every process
#   (this call may see one micro-batch of it); max_tokens: the generation budget (Dr. GRPO)

def grpo_loss(
    *, logp, old_logp, advantages, mask, clip_low=0.2, clip_high=None, dual_clip=0.0, beta=0.0, ref_logp=None,
    kl_estimator="k3", is_weights=None, entropy=None, entropy_coef=0.0, num_sequences=None, num_tokens=None,
    max_tokens=None, world_size=1,
) -> PolicyLossOutput:
    """GRPO (DeepSeekMath eq. 3): seq-mean-token-mean, ``mean_i [ sum_t m x / sum_t m ]``."""
    return _policy_objective(lambda x: aggregate(x, mask, "seq-mean-token-mean", num_sequences), logp, old_logp,
                             advantages, mask, clip_low, clip_high, dual_clip, beta, ref_logp, kl_estimator,
                             is_weights, entropy, entropy_coef, num_tokens, world_size)


def dapo_loss(
    *, logp, old_logp, advantages, mask, clip_low=0.2, clip_high=None, dual_clip=0.0, beta=0.0, ref_logp=None,
    kl_estimator="k3", is_weights=None, entropy=None, entropy_coef=0.0, num_sequences=None, num_tokens=None,
    max_tokens=None, world_size=1,
) -> PolicyLossOutput:
    """DAPO (Yu et al. 2025): token-mean, ``sum_i sum_t m x / sum_i sum_t m``: long completions weigh more."""
    return _policy_objective(lambda x: aggregate(x, mask, "token-mean", num_tokens=num_tokens), logp, old_logp,
                             advantages, mask, clip_low, clip_high, dual_clip, beta, ref_logp, kl_estimator,
                             is_weights, entropy, entropy_coef, num_tokens, world_size)


def dr_grpo_loss(
    *, logp, old_logp, advantages, mask, clip_low=0.2, clip_high=None, dual_clip=0.0, beta=0.0, ref_logp=None,
    kl_estimator="k3", is_weights=None, entropy=None, entropy_coef=0.0, num_sequences=None, num_tokens=None,
    max_tokens=None, world_size=1,
) -> PolicyLossOutput:
    """Dr. GRPO (Liu et al. 2025): seq-mean-token-sum-norm, ``sum_i sum_t m x / (B * max_tokens)``: no length bias."""
    return _policy_objective(lambda x: aggregate(x, mask, "seq-mean-token-sum-norm", num_sequences,
                                                 max_tokens=max_tokens),
                             logp, old_logp, advantages, mask, clip_low, clip_high, dual_clip, beta, ref_logp,
                             kl_estimator, is_weights, entropy, entropy_coef, num_tokens, world_size)


# ``loss_agg`` -> the variant
POLICY_LOSSES = {"seq-mean-token-mean": grpo_loss, "token-mean": dapo_loss, "seq-mean-token-sum-norm": dr_grpo_loss}


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


class PPOLossOutput(NamedTuple):
    loss: torch.Tensor  # () what to backpropagate (x world_size)
    total: torch.Tensor  # () the share of the whole objective, not scaled, detached
    policy: PolicyLossOutput  # the policy part (computed with world_size 1 and no entropy bonus)
    value_loss: torch.Tensor  # () the clipped value loss, detached
    value_clip_frac: torch.Tensor  # () fraction of tokens where the clipped value term won


def ppo_loss(
    *, aggregation: str, logp, old_logp, advantages, mask, values, old_values, returns, vf_coef=0.5, value_clip=0.2,
    clip_low=0.2, clip_high=None, dual_clip=0.0, beta=0.0, ref_logp=None, kl_estimator="k3", entropy=None,
    entropy_coef=0.0, num_sequences=None, num_tokens=None, max_tokens=None, world_size=1,
) -> PPOLossOutput:
    """PPO's whole objective: ``L_policy(aggregation) + vf_coef * L_value - entropy_coef * token_mean(H)``;
    ``values, old_values, returns`` are (B, T), the policy part takes the variant named by ``aggregation``."""
    policy = POLICY_LOSSES[aggregation](
        logp=logp, old_logp=old_logp, advantages=advantages, mask=mask, clip_low=clip_low, clip_high=clip_high,
        dual_clip=dual_clip, beta=beta, ref_logp=ref_logp, kl_estimator=kl_estimator, num_sequences=num_sequences,
        num_tokens=num_tokens, max_tokens=max_tokens)
    vloss, vclip = value_loss(values, old_values, returns, mask, value_clip, num_tokens)
    loss = policy.loss + vf_coef * vloss
    if entropy_coef > 0:
        if entropy is None:
            raise ValueError("entropy_coef > 0 needs entropy")
        loss = loss - entropy_coef * aggregate(entropy, mask, "token-mean", num_tokens=num_tokens)
    return PPOLossOutput(loss * world_size, loss.detach(), policy, vloss.detach(), vclip)


def truncated_is_weights(
    old_logp: torch.Tensor,  # (B, T) log pi_old (the learner's)
    sampler_logp: torch.Tensor,  # (B, T) log pi_sampler
    cap: float,
) -> torch.Tensor:  # (B, T) min(pi_old / pi_sampler, cap)
    return torch.exp(old_logp - sampler_logp).clamp(max=cap)


def approx_kl(
    logp: torch.Tensor,  # (B, T)
    old_logp: torch.Tensor,  # (B, T)
    mask: torch.Tensor,  # (B, T)
) -> float:
    """Token-mean k3 estimate of KL(pi_old || pi_theta) on the sampled tokens (cleanrl's approx_kl)."""
    log_ratio = (logp - old_logp).detach()
    m = mask.float()
    return (((torch.exp(log_ratio) - 1) - log_ratio) * m).sum().item() / max(m.sum().item(), 1.0)


def sampler_mismatch(
    learner_logp: torch.Tensor,  # (B, T) the learner's log-probs of the sampled tokens
    sampler_logp: torch.Tensor,  # (B, T) the sampler's
    mask: torch.Tensor,  # (B, T)
) -> tuple[float, float, float]:
    """(token-mean |log pi_learner - log pi_sampler|, token-mean k3 KL(sampler || learner), tokens)."""
    m = mask.float()
    n = m.sum().item()
    if n == 0:
        return 0.0, 0.0, 0.0
    delta = (learner_logp.detach() - sampler_logp) * m
    return delta.abs().sum().item() / n, ((torch.exp(delta) - delta - 1) * m).sum().item() / n, n
