"""Pack prompts and completions into padded tensors and score them with a causal LM.

Layout of one micro-batch (prompts left-padded, completions right-padded), so every
completion starts at the same column and the logits that predict it are the last
``T + 1`` positions of the forward pass (``logits_to_keep``)::

    [pad pad p p p | c c c pad]
    [pad p p p p p | c c c c  ]

Position ids count only real tokens (as ``generate`` and vLLM do), so a left-padded row
scores exactly like the same row without padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from reasoner.loss import token_entropy, token_logprobs


@dataclass
class MicroBatch:
    index: torch.Tensor  # (b,) positions of these sequences in the step's batch
    input_ids: torch.Tensor  # (b, P + T)
    attention_mask: torch.Tensor  # (b, P + T)
    position_ids: torch.Tensor  # (b, P + T)
    completion_ids: torch.Tensor  # (b, T)
    completion_mask: torch.Tensor  # (b, T)
    sampler_logprobs: torch.Tensor  # (b, T) log-probs the sampler reported (0 where unknown or padding)
    loss_mask: torch.Tensor | None = None  # (b, T) tokens that count in the loss; None: completion_mask

    def __post_init__(self):
        if self.loss_mask is None:
            self.loss_mask = self.completion_mask

    def to(self, device) -> "MicroBatch":
        return MicroBatch(*(t.to(device) for t in (self.index, self.input_ids, self.attention_mask, self.position_ids,
                                                    self.completion_ids, self.completion_mask, self.sampler_logprobs,
                                                    self.loss_mask)))


def pack(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
         index: Sequence[int] | None = None, logprobs: Sequence[Sequence[float]] | None = None) -> MicroBatch:
    b = len(prompts)
    width_p = max(len(p) for p in prompts)
    width_c = max(max(len(c) for c in completions), 1)
    input_ids = torch.full((b, width_p + width_c), pad_id, dtype=torch.long)
    attention = torch.zeros((b, width_p + width_c), dtype=torch.long)
    completion_mask = torch.zeros((b, width_c), dtype=torch.long)
    sampler_logprobs = torch.zeros((b, width_c), dtype=torch.float32)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        if logprobs is not None:
            sampler_logprobs[i, :len(logprobs[i])] = torch.tensor(list(logprobs[i]), dtype=torch.float32)
        input_ids[i, width_p - len(p):width_p] = torch.tensor(list(p), dtype=torch.long)
        input_ids[i, width_p:width_p + len(c)] = torch.tensor(list(c), dtype=torch.long)
        attention[i, width_p - len(p):width_p + len(c)] = 1
        completion_mask[i, :len(c)] = 1
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    idx = torch.tensor(list(index) if index is not None else range(b), dtype=torch.long)
    return MicroBatch(idx, input_ids, attention, position_ids, input_ids[:, width_p:].clone(), completion_mask,
                      sampler_logprobs)


def micro_batches(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], size: int,
                  pad_id: int, logprobs: Sequence[Sequence[float]] | None = None) -> list[MicroBatch]:
    """Split a batch into micro-batches of similar total length (less padding, same math)."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) + len(completions[i]))
    chunks = [order[i:i + size] for i in range(0, len(order), size)]
    return [pack([prompts[i] for i in c], [completions[i] for i in c], pad_id, c,
                 None if logprobs is None else [logprobs[i] for i in c]) for c in chunks]


def completion_logits(model, mb: MicroBatch) -> torch.Tensor:  # (b, T, V)
    width_c = mb.completion_ids.shape[1]
    out = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask, position_ids=mb.position_ids,
                logits_to_keep=width_c + 1, use_cache=False)
    return out.logits[:, :-1]


def score(model, mb: MicroBatch, temperature: float, entropy: bool = False, entropy_grad: bool = False):
    """Log-probs of the completion tokens (b, T) and, if asked, per-token entropy (b, T);
    the entropy carries gradients only with ``entropy_grad`` (an entropy bonus)."""
    logits = completion_logits(model, mb)
    logp = token_logprobs(logits, mb.completion_ids, temperature)
    ent = None
    if entropy or entropy_grad:
        ent = token_entropy(logits if entropy_grad else logits.detach(), temperature)
    return logp, ent
