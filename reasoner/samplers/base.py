"""The sampler contract: generate G completions per prompt and return token ids with sampling log-probs.

A sampler deals only in token ids. Prompts arrive tokenised (chat template applied by the
caller); completions come back as `Completion`s holding the generated ids (the stop token
included, so the learner also learns to stop), the log-probability of each id under the
*sampling* distribution (temperature and top-p applied), the decoded text and why it ended.

``Sampler.load_weights(named_tensors)`` is called after every optimizer step so that the
next rollout samples from the new policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

import click
import torch


class SamplerError(click.ClickException):
    """The sampler cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 32
    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    seed: int | None = None
    prompt_seeds: tuple[int, ...] | None = None
    """One seed per prompt: each group's samples then depend only on its prompt and seed (not on batching)."""


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "stop" (end-of-sequence token) or "length" (max_new_tokens reached)


class Sampler(Protocol):
    name: str
    """hf, vllm or vllm-server: what summaries and logs call it."""
    pad_id: int
    """The token that pads batches of its completions."""

    def generate(self, prompts: Sequence[Sequence[int]], n: int, params: SamplingParams) -> list[list[Completion]]:
        """``n`` completions for each tokenised prompt, grouped per prompt in prompt order."""

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Make the next ``generate`` sample from these weights."""

    def close(self) -> None:
        """Release the engine."""
