"""The learner's batches: a rollout flattened to sequences, split into minibatches and packed
into padded micro-batches that carry every per-sequence tensor of the update.

Layout of one micro-batch (prompts left-padded, completions right-padded), so every
completion starts at the same column and the logits that predict it are the last
``T + 1`` positions of the forward pass (``logits_to_keep``)::

    [pad pad p p p | c c c pad]
    [pad p p p p p | c c c c  ]

Position ids count only real tokens (as ``generate`` and vLLM do), so a left-padded row
scores exactly like the same row without padding.

With a shared prefix (``shared_prefix``, Prefix Grouper, arXiv 2506.05433) the forward pass
runs instead on one packed row per micro-batch: each distinct prompt once, followed by the
completions that continue it. A block attention mask lets each completion see its own prompt
and its own earlier tokens only, and position ids restart at the prompt's end for every
completion, so every completion token is scored exactly as in its own row; the prompt's tokens
are computed once instead of once per group member::

    [p p p | c c c | c c | c c c c]      mask: c-block i sees the p-block and itself (causal)

``score_positions`` (b, T) then say which positions of the row predict each completion token;
the padded tensors (``completion_ids``, masks, log-probs) keep their (b, T) shape either way.

The update fills in the rest of a micro-batch as it goes: the old, reference and (PPO) value
tensors from no-grad passes, then the advantages (and PPO's returns). Nothing about a
micro-batch lives anywhere else.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Sequence

import torch

from reasoner.loss import token_logprobs
from reasoner.samplers import Completion


@dataclass
class MicroBatch:
    index: torch.Tensor  # (b,) positions of these sequences in the step's batch
    input_ids: torch.Tensor  # (b, P + T)
    attention_mask: torch.Tensor  # (b, P + T)
    position_ids: torch.Tensor  # (b, P + T)
    completion_ids: torch.Tensor  # (b, T)
    completion_mask: torch.Tensor  # (b, T) 1 for the model's tokens; 0 for padding and tool-output tokens
    sampler_logprobs: torch.Tensor  # (b, T) log-probs the sampler reported (0 where unknown or padding)
    loss_mask: torch.Tensor | None = None  # (b, T) tokens that count in the loss; None: completion_mask
    # the shared-prefix layout of the same sequences (None: the padded rows above are the forward's input)
    shared_ids: torch.Tensor | None = None  # (1, L) each distinct prompt once, then its completions
    shared_mask: torch.Tensor | None = None  # (1, 1, L, L) bool: which positions each position attends to
    shared_positions: torch.Tensor | None = None  # (1, L)
    score_positions: torch.Tensor | None = None  # (b, T) the row position whose logits predict each token
    # filled in by the update
    old_logprobs: torch.Tensor | None = None  # (b, T) log pi_old: the ratio's denominator
    ref_logprobs: torch.Tensor | None = None  # (b, T) log pi_ref (when beta > 0)
    tis_weights: torch.Tensor | None = None  # (b, T) truncated importance weights (tis_cap > 0)
    advantages: torch.Tensor | None = None  # (b,) per sequence (GRPO) or (b, T) per token (PPO)
    old_values: torch.Tensor | None = None  # (b, T) PPO: the critic's V(s_t) before the update
    returns: torch.Tensor | None = None  # (b, T) PPO: the value targets of GAE

    def __post_init__(self):
        if self.loss_mask is None:
            self.loss_mask = self.completion_mask

    def to(self, device) -> "MicroBatch":
        return MicroBatch(**{f.name: None if (t := getattr(self, f.name)) is None else t.to(device)
                             for f in dataclasses.fields(self)})


@dataclass
class StepBatch:
    """The learner's view of one rollout, flattened to sequences (prompt-major, group members adjacent)."""

    prompts: list[list[int]]  # (N,) prompt token ids per sequence
    completions: list[Completion]  # (N,)
    in_loss: list[bool]  # (N,) False leaves the whole sequence out of the loss (overlong masking)

    def __len__(self) -> int:
        return len(self.completions)

    def micro_batches(self, plan: list[list[list[int]]], pad_id: int, device,
                      shared_prefix: bool = False) -> list[list[MicroBatch]]:
        """Pack every micro-batch of ``plan`` (``minibatch_plan``) onto the device, with the shared-prefix
        layout too when asked; sequences left out of the loss get loss mask 0. Returns
        ``[minibatch][micro-batch]``."""
        out = []
        for minibatch in plan:
            packed = []
            for idx in minibatch:
                idx = sorted(idx, key=lambda i: len(self.prompts[i]) + len(self.completions[i].token_ids))
                mb = pack([self.prompts[i] for i in idx], [self.completions[i].token_ids for i in idx], pad_id, idx,
                          [self.completions[i].logprobs for i in idx], [self.completions[i].mask() for i in idx])
                keep = torch.tensor([self.in_loss[i] for i in idx], dtype=mb.completion_mask.dtype)
                mb.loss_mask = mb.completion_mask * keep.unsqueeze(-1)
                if shared_prefix:
                    (mb.shared_ids, mb.shared_mask, mb.shared_positions,
                     mb.score_positions) = shared_layout([self.prompts[i] for i in idx],
                                                         [self.completions[i].token_ids for i in idx])
                packed.append(mb.to(device))
            out.append(packed)
        return out


def minibatch_plan(n: int, minibatches: int, micro_batch_size: int, seed: str) -> list[list[list[int]]]:
    """Split sequence indices into ``minibatches`` random minibatches, each into micro-batches of
    ``micro_batch_size``. Returns ``[minibatch][micro-batch] -> indices``."""
    order = list(range(n))
    if minibatches > 1:
        random.Random(seed).shuffle(order)
    plan = []
    for m in range(minibatches):
        members = order[m * n // minibatches:(m + 1) * n // minibatches]
        plan.append([members[i:i + micro_batch_size] for i in range(0, len(members), micro_batch_size)])
    return plan


def pack(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
         index: Sequence[int] | None = None, logprobs: Sequence[Sequence[float]] | None = None,
         model_masks: Sequence[Sequence[int]] | None = None) -> MicroBatch:
    """Pad sequences into one micro-batch. ``completion_mask`` marks the model's tokens only: tool-output
    tokens (``model_masks`` 0) are in ``input_ids`` and attended to, but out of every loss, KL and entropy sum."""
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
        completion_mask[i, :len(c)] = 1 if model_masks is None else torch.tensor(list(model_masks[i]), dtype=torch.long)
    position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
    idx = torch.tensor(list(index) if index is not None else range(b), dtype=torch.long)
    return MicroBatch(idx, input_ids, attention, position_ids, input_ids[:, width_p:].clone(), completion_mask,
                      sampler_logprobs)


def shared_layout(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]]):
    """(ids, mask, positions, score_positions) of the shared-prefix row of these sequences (module docstring)."""
    width_c = max(max(len(c) for c in completions), 1)
    ids: list[int] = []
    positions: list[int] = []
    blocks: list[tuple[int, int, int, int]] = []  # (prompt start, prompt end, block start, block end)
    prompt_at: dict[tuple[int, ...], tuple[int, int]] = {}
    score = torch.zeros((len(prompts), width_c), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        key = tuple(p)
        if key not in prompt_at:
            prompt_at[key] = (len(ids), len(ids) + len(p))
            ids += p
            positions += range(len(p))
            blocks.append((*prompt_at[key], *prompt_at[key]))
        p0, p1 = prompt_at[key]
        start = len(ids)
        ids += c
        positions += range(len(p), len(p) + len(c))
        blocks.append((p0, p1, start, start + len(c)))
        if c:  # token t is predicted at the position before it: the prompt's last token for t = 0
            score[i, :len(c)] = torch.tensor([p1 - 1] + list(range(start, start + len(c) - 1)))
        score[i, len(c):] = p1 - 1  # padding: any valid position (masked out of every sum)
    n = len(ids)
    mask = torch.zeros((n, n), dtype=torch.bool)
    for p0, p1, b0, b1 in blocks:
        if b0 != p0:  # a completion sees all of its prompt
            mask[b0:b1, p0:p1] = True
        mask[b0:b1, b0:b1] = torch.ones((b1 - b0, b1 - b0), dtype=torch.bool).tril()  # and itself causally
    return (torch.tensor([ids], dtype=torch.long), mask[None, None], torch.tensor([positions], dtype=torch.long),
            score)


def forward_inputs(mb: MicroBatch) -> dict:
    """The model call's inputs for ``mb``'s layout (padded rows, or the shared-prefix row)."""
    if mb.score_positions is None:
        return {"input_ids": mb.input_ids, "attention_mask": mb.attention_mask, "position_ids": mb.position_ids}
    return {"input_ids": mb.shared_ids, "attention_mask": mb.shared_mask, "position_ids": mb.shared_positions}


def keep_positions(mb: MicroBatch):
    """``logits_to_keep`` for ``mb``: the last T + 1 columns, or exactly the scored positions of the row."""
    if mb.score_positions is None:
        return mb.completion_ids.shape[1] + 1
    return mb.score_positions.flatten()


def scored(mb: MicroBatch, per_position: torch.Tensor) -> torch.Tensor:
    """(rows, L', ...) outputs at ``keep_positions`` -> (b, T, ...) aligned with ``completion_ids``."""
    b, width_c = mb.completion_ids.shape
    if mb.score_positions is None:
        return per_position[:, -(width_c + 1):-1]
    return per_position[0].reshape(b, width_c, *per_position.shape[2:])


def completion_logits(model, mb: MicroBatch) -> torch.Tensor:  # (b, T, V)
    out = model(**forward_inputs(mb), logits_to_keep=keep_positions(mb), use_cache=False)
    return scored(mb, out.logits)


def completion_logprobs(model, mb: MicroBatch, temperature: float) -> torch.Tensor:  # (b, T)
    """``model``'s log-probs of the completion tokens at ``temperature`` (a graph unless under no_grad)."""
    return token_logprobs(completion_logits(model, mb), mb.completion_ids, temperature)
