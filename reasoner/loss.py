"""Policy losses. Pure functions of tensors; shapes are (B, T): B sequences, T completion tokens.

The GRPO objective (DeepSeekMath, https://arxiv.org/abs/2402.03300, eq. 3), as a loss to
minimise, per token t of completion i with mask m:

    ratio_t   = exp(logp_t - old_logp_t)                       # pi_theta / pi_sampling
    pg_t      = max(-A_i * ratio_t, -A_i * clip(ratio_t, 1 - eps, 1 + eps))
    kl_t      = exp(ref_t - logp_t) - (ref_t - logp_t) - 1      # k3 estimator of KL(pi_theta || pi_ref)
    loss      = mean_i [ sum_t m_t (pg_t + beta * kl_t) / sum_t m_t ]

k3 (Schulman, http://joschu.net/blog/kl-approx.html) is unbiased for KL(pi_theta || pi_ref)
on tokens sampled from pi_theta and is always >= 0.

Truncated importance sampling (TIS, Yao et al. 2025, "Your efficient RL framework secretly
brings you off-policy RL training"): when the sampler's probabilities differ from the learner's
(other kernels, lower precision), ``pg_t`` is multiplied by ``min(pi_old_t / pi_sampler_t, C)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


def token_logprobs(
    logits: torch.Tensor,  # (B, T, V) logits that predict each of `tokens`
    tokens: torch.Tensor,  # (B, T) token ids
    temperature: float = 1.0,
) -> torch.Tensor:  # (B, T) log pi(token) under softmax(logits / temperature)
    logits = logits.float() / temperature
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


@torch.no_grad()
def token_entropy(
    logits: torch.Tensor,  # (B, T, V)
    temperature: float = 1.0,
) -> torch.Tensor:  # (B, T) entropy of softmax(logits / temperature) in nats
    logits = logits.float() / temperature
    logz = torch.logsumexp(logits, dim=-1)
    probs = torch.exp(logits - logz.unsqueeze(-1))
    return logz - (probs * logits).sum(-1)


def kl_k3(
    logp: torch.Tensor,  # (B, T) log pi_theta of the sampled tokens
    ref_logp: torch.Tensor,  # (B, T) log pi_ref of the same tokens
) -> torch.Tensor:  # (B, T) per-token k3 estimate, >= 0
    log_ratio = ref_logp - logp
    return torch.exp(log_ratio) - log_ratio - 1


def clipped_surrogate(
    logp: torch.Tensor,  # (B, T) log pi_theta (requires grad)
    old_logp: torch.Tensor,  # (B, T) log pi of the policy that sampled the tokens
    advantages: torch.Tensor,  # (B,) one advantage per sequence, or (B, T) per token
    clip_eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token PPO clipped loss, and masks of tokens where the low / high clip is active."""
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    ratio = torch.exp(logp - old_logp)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps)
    loss = torch.maximum(pg_loss1, pg_loss2)
    low_clipped = (ratio < 1 - clip_eps) & (advantages < 0)  # gradient zeroed by the clip
    high_clipped = (ratio > 1 + clip_eps) & (advantages > 0)
    return loss, low_clipped, high_clipped


def seq_mean_token_mean(
    values: torch.Tensor,  # (B, T)
    mask: torch.Tensor,  # (B, T) 1 for completion tokens, 0 for padding
    num_sequences: int | None = None,  # divide by this instead of B (micro-batches of a larger batch)
) -> torch.Tensor:  # () scalar
    mask = mask.to(values.dtype)
    per_seq = (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.sum() / (num_sequences if num_sequences is not None else values.shape[0])


class GRPOLossOutput(NamedTuple):
    loss: torch.Tensor  # () what to backpropagate
    policy_loss: torch.Tensor  # () the surrogate part
    kl: torch.Tensor  # () token-mean k3 KL to the reference (0 when beta == 0)
    clip_low: torch.Tensor  # () fraction of tokens clipped below
    clip_high: torch.Tensor  # () fraction of tokens clipped above


def grpo_loss(
    logp: torch.Tensor,  # (B, T) log pi_theta of completion tokens (requires grad)
    old_logp: torch.Tensor,  # (B, T) log pi of the sampling policy
    advantages: torch.Tensor,  # (B,) group-relative advantage per sequence
    mask: torch.Tensor,  # (B, T) completion-token mask
    clip_eps: float = 0.2,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,  # (B, T) log pi_ref; required when beta > 0
    num_sequences: int | None = None,  # the batch's sequence count when this is one micro-batch
    is_weights: torch.Tensor | None = None,  # (B, T) importance weights on the surrogate (TIS), no grad
) -> GRPOLossOutput:
    pg, low, high = clipped_surrogate(logp, old_logp, advantages, clip_eps)
    if is_weights is not None:
        pg = pg * is_weights.detach()
    per_token = pg
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp")
        kl = kl_k3(logp, ref_logp)
        per_token = pg + beta * kl
    else:
        kl = torch.zeros_like(pg)
    loss = seq_mean_token_mean(per_token, mask, num_sequences)
    with torch.no_grad():
        fmask = mask.float()
        n = fmask.sum().clamp(min=1)
        return GRPOLossOutput(
            loss=loss,
            policy_loss=seq_mean_token_mean(pg.detach(), mask, num_sequences),
            kl=(kl.detach() * fmask).sum() / n,
            clip_low=(low.float() * fmask).sum() / n,
            clip_high=(high.float() * fmask).sum() / n,
        )
