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
    mask: torch.Tensor,  # (B, T) 1 for completion tokens; each row's ones come first
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:  # advantages (B, T), returns (B, T); 0 on padding
    mask = mask.to(rewards.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages, (advantages + values) * mask


def whiten(
    values: torch.Tensor,  # (B, T)
    mask: torch.Tensor,  # (B, T)
    shift_mean: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:  # (B, T) zero mean, unit variance over masked entries; 0 on padding
    mask = mask.to(values.dtype)
    n = mask.sum().clamp(min=1)
    mean = (values * mask).sum() / n
    var = (((values - mean) * mask) ** 2).sum() / n
    out = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask
