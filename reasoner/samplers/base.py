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
    stop: tuple[str, ...] = ()
    """Strings that end a completion early (the end of a tool call); the text may run past them inside
    the last token, which is kept whole."""
    prompt_seeds: tuple[int, ...] | None = None
    """One seed per prompt: each group's samples then depend only on its prompt and seed (not on batching)."""


@dataclass
class Completion:
    token_ids: list[int]
    """Every token after the prompt: the model's and, with tools, the tool outputs' (interleaved)."""
    logprobs: list[float]
    """One per token: the sampler's log-prob for model tokens, 0.0 at tool-output positions."""
    text: str
    """The model's own text (tool outputs left out): what the verifiers judge."""
    finish_reason: str  # "stop" (end-of-sequence token), "length" (max_new_tokens reached) or "tool" (a call's end)
    model_mask: list[int] | None = None
    """1 for tokens the model sampled, 0 for tool-output tokens; None: every token is the model's."""
    transcript: str | None = None
    """With tools: the whole trajectory's text, tool outputs included (for logs, never judged)."""
    tool_calls: int = 0
    tool_errors: int = 0
    tool_seconds: float = 0.0

    def mask(self) -> list[int]:
        """``model_mask``, or all ones."""
        return self.model_mask if self.model_mask is not None else [1] * len(self.token_ids)

    @property
    def model_tokens(self) -> int:
        """How many tokens the model sampled (what ``max_new_tokens`` bounds)."""
        return len(self.token_ids) if self.model_mask is None else sum(self.model_mask)


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
