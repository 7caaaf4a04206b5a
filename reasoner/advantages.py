"""Advantage estimators. Pure functions of tensors.

GRPO (Shao et al. 2024, DeepSeekMath, https://arxiv.org/abs/2402.03300, eq. 3 "outcome
supervision"): each completion's advantage is its reward relative to the other completions
sampled for the same prompt, given to every token of the completion:

    A_i = (r_i - mean(r_group)) / (std + eps)

``std`` is the group's sample standard deviation (Bessel's correction, n - 1, as in TRL), the
whole batch's (``scale="batch"``), or 1 (``scale="none"``, Dr. GRPO, Liu et al. 2025,
https://arxiv.org/abs/2503.20783). A group whose rewards are all equal carries no signal: its
advantages are exactly zero (never NaN).

PPO (Schulman et al. 2017) with GAE (Schulman et al. 2016, https://arxiv.org/abs/1506.02438):

    delta_t = r_t + gamma * V_{t+1} - V_t          (V after the last token is 0)
    A_t     = delta_t + gamma * lam * A_{t+1}
    R_t     = A_t + V_t                            (the value target, "returns")

PPO whitens the advantages over the batch's tokens: ``(A - mean) / (std + eps)`` (``mean_std``
and ``whiten``; the same ``mean_std`` gives GRPO's batch std when several processes share a batch).
"""

from __future__ import annotations

import torch

SCALES = ("group", "batch", "none")


def grpo_advantages(
    rewards: torch.Tensor,  # (P, G) one row per prompt, one column per completion
    scale: str | bool = "group",
    eps: float = 1e-4,
    batch_std: float | None = None,  # scale="batch": the std of the whole batch when this is a shard of it
) -> torch.Tensor:  # (P, G)
    """Group-relative advantages ``(r - group mean) / (std + eps)``, std per ``scale``."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (prompts, group_size >= 2), got {tuple(rewards.shape)}")
    scale = {True: "group", False: "none"}.get(scale, scale)  # type: ignore[arg-type]
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    rewards = rewards.float()
    centered = rewards - rewards.mean(dim=1, keepdim=True)
    if scale == "none":
        return centered
    if scale == "group":
        return centered / (rewards.std(dim=1, keepdim=True) + eps)
    return centered / ((rewards.std() if batch_std is None else batch_std) + eps)


def gae(
    rewards: torch.Tensor,  # (B, T) per-token rewards (the outcome reward on the last real token)
    values: torch.Tensor,  # (B, T) critic's V(s_t), s_t = prompt + tokens before t
    mask: torch.Tensor,  # (B, T) 1 for the model's tokens; 0 for padding and tool-output tokens
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:  # advantages (B, T), returns (B, T); 0 where mask is 0
    """Positions with mask 0 are skipped, not ends: a tool output between two model tokens is part of the
    environment's transition, so the model token before it bootstraps from the model token after it."""
    mask = mask.to(rewards.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        step = (delta + gamma * lam * running) * m
        advantages[:, t] = step
        running = torch.where(m > 0, step, running)
        next_value = torch.where(m > 0, values[:, t], next_value)
    return advantages, (advantages + values) * mask


def mean_std(
    values: torch.Tensor,  # any shape: every entry counts
    all_sum=None,  # adds a number over every process (``Dist.sum``); None: this process only
    unbiased: bool = False,  # Bessel's correction (n - 1)
) -> tuple[float, float]:
    """Mean and standard deviation of ``values`` over every process's shard, from float64 sums:
    ``mean = S1 / n``, ``var = (S2 - n * mean^2) / (n - ddof)``."""
    add = all_sum or (lambda x: x)
    v = values.detach().double()
    n = add(v.numel())
    mean = add(v.sum().item()) / n
    var = (add((v * v).sum().item()) - n * mean * mean) / max(n - (1 if unbiased else 0), 1)
    return mean, max(var, 0.0) ** 0.5


def whiten(
    values: torch.Tensor,  # (B, T)
    mask: torch.Tensor,  # (B, T)
    mean: float,
    std: float,  # of the masked entries (``mean_std``, possibly over several micro-batches and processes)
    eps: float = 1e-8,
) -> torch.Tensor:  # (B, T) (values - mean) / (std + eps); 0 on padding
    return (values - mean) / (std + eps) * mask
