"""Advantage estimators. Pure functions of tensors.

GRPO (Shao et al. 2024, DeepSeekMath, https://arxiv.org/abs/2402.03300, eq. 3 "outcome
supervision"): each completion's advantage is its reward relative to the other completions
sampled for the same prompt, given to every token of the completion:

    A_i = (r_i - mean(r_group)) / (std(r_group) + eps)

``std`` is the sample standard deviation (Bessel's correction, n - 1), as in TRL. A group
whose rewards are all equal carries no signal: its advantages are exactly zero (never NaN).
"""

from __future__ import annotations

import torch


def grpo_advantages(
    rewards: torch.Tensor,  # (P, G) one row per prompt, one column per completion
    scale: bool = True,
    eps: float = 1e-4,
) -> torch.Tensor:  # (P, G)
    """Group-relative advantages ``(r - mean) / (std + eps)``; ``scale=False`` drops the division."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be (prompts, group_size >= 2), got {tuple(rewards.shape)}")
    rewards = rewards.float()
    centered = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centered
    return centered / (rewards.std(dim=1, keepdim=True) + eps)
