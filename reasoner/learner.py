"""Learner mechanics shared by GRPO and PPO: minibatch plans, micro-batches on the device,
no-grad scoring passes, the optimizer step, and per-step statistics."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from reasoner.batch import MicroBatch, pack, score
from reasoner.rollout import Completion


@dataclass
class StepBatch:
    """The learner's view of one rollout, flattened to sequences (prompt-major, group members adjacent)."""

    prompts: list[list[int]]  # (N,) prompt token ids per sequence
    completions: list[Completion]  # (N,)
    in_loss: list[bool]  # (N,) False leaves the whole sequence out of the loss (overlong masking)

    def __len__(self) -> int:
        return len(self.completions)


def minibatch_plan(n: int, minibatches: int, micro_batch_size: int, seed: str) -> list[list[list[int]]]:
    """Split sequence indices into ``minibatches`` random minibatches, each into micro-batches of
    similar length order. Returns ``[minibatch][micro-batch] -> indices``."""
    order = list(range(n))
    if minibatches > 1:
        random.Random(seed).shuffle(order)
    plan = []
    for m in range(minibatches):
        members = order[m * n // minibatches:(m + 1) * n // minibatches]
        plan.append([members[i:i + micro_batch_size] for i in range(0, len(members), micro_batch_size)])
    return plan


def build_micro_batches(batch: StepBatch, plan: list[list[list[int]]], pad_id: int, device) -> list[list[MicroBatch]]:
    """Pack every micro-batch of the plan onto the device; sequences left out of the loss get mask 0."""
    out = []
    for minibatch in plan:
        packed = []
        for idx in minibatch:
            idx = sorted(idx, key=lambda i: len(batch.prompts[i]) + len(batch.completions[i].token_ids))
            mb = pack([batch.prompts[i] for i in idx], [batch.completions[i].token_ids for i in idx], pad_id, idx,
                      [batch.completions[i].logprobs for i in idx])
            keep = torch.tensor([batch.in_loss[i] for i in idx], dtype=mb.completion_mask.dtype)
            mb.loss_mask = mb.completion_mask * keep.unsqueeze(-1)
            packed.append(mb.to(device))
        out.append(packed)
    return out


@torch.no_grad()
def no_grad_logprobs(model, micro: Iterable[MicroBatch], temperature: float) -> dict[int, torch.Tensor]:
    """``id(micro-batch) -> (b, T)`` log-probs under ``model``, without building a graph."""
    return {id(mb): score(model, mb, temperature)[0] for mb in micro}


def optimizer_step(parameters: Sequence[torch.nn.Parameter], optimizers: Sequence[torch.optim.Optimizer],
                   schedulers: Sequence, max_grad_norm: float) -> float:
    """Clip the global gradient norm, step every optimizer and scheduler, zero the gradients."""
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm if max_grad_norm > 0 else float("inf"))
    for opt in optimizers:
        opt.step()
    for sched in schedulers:
        sched.step()
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    return float(norm)


@dataclass
class Stats:
    """Token-weighted running means of learner statistics."""

    sums: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, value: float, weight: float = 1.0) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value * weight
        self.weights[key] = self.weights.get(key, 0.0) + weight

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def approx_kl(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> float:
    """Token-mean k3 estimate of KL(pi_old || pi_theta) on the sampled tokens (cleanrl's approx_kl)."""
    log_ratio = (logp - old_logp).detach()
    m = mask.float()
    return (((torch.exp(log_ratio) - 1) - log_ratio) * m).sum().item() / max(m.sum().item(), 1.0)


def mismatch(learner_logp: torch.Tensor, mb: MicroBatch, stats: Stats) -> None:
    """Log |log pi_learner - log pi_sampler| and the k3 KL(sampler || learner) on the sampled tokens."""
    m = mb.completion_mask.float()
    n = m.sum().item()
    if n == 0:
        return
    delta = (learner_logp.detach() - mb.sampler_logprobs) * m
    stats.add("logprobs/sampler_abs_diff", delta.abs().sum().item() / n, n)
    stats.add("logprobs/sampler_kl", ((torch.exp(delta) - delta - 1) * m).sum().item() / n, n)


def global_std(values: torch.Tensor, dist) -> float:
    """Sample standard deviation of ``values`` across every process's shard."""
    n = dist.sum(values.numel())
    total = dist.sum(values.sum().item())
    squares = dist.sum((values.double() ** 2).sum().item())
    mean = total / n
    return max((squares - n * mean * mean) / max(n - 1, 1), 0.0) ** 0.5


def minibatch_normalisers(mbs: Sequence[MicroBatch], dist) -> tuple[int, int]:
    """Sequences and loss tokens of a whole minibatch over every process: the loss normalisers, so
    that micro-batching and sharding leave the loss (and, with DDP's averaging x world, the gradient) unchanged."""
    n_seq = int(dist.sum(sum(len(mb.index) for mb in mbs)))
    n_tok = int(dist.sum(sum(mb.loss_mask.sum().item() for mb in mbs))) or 1
    return n_seq, n_tok


def effective_minibatches(requested: int, n_sequences: int, dist) -> int:
    """Minibatches every process can fill (each must run the same number of synchronised steps)."""
    return int(dist.min(min(requested, max(n_sequences, 1))))


def record_surrogate(stats: Stats, out, weight: float) -> None:
    """Add one micro-batch's policy-loss statistics (a ``PolicyLossOutput``)."""
    stats.add("loss/policy", out.policy_loss.item(), 1)
    stats.add("clip/frac_low", out.clip_low.item(), weight)
    stats.add("clip/frac_high", out.clip_high.item(), weight)
    stats.add("clip/frac_dual", out.clip_dual.item(), weight)


def summarize(stats: Stats, grad_norms: list[float], run, beta: float, stopped: bool) -> dict[str, float]:
    """Per-step learner metrics. Losses are summed per minibatch (micro-batch shares) and averaged
    over optimizer steps; everything else is a token- or count-weighted mean."""
    out = stats.means()
    updates = len(grad_norms)
    for key in [k for k in stats.sums if k.startswith("loss/")]:
        out[key] = stats.sums[key] / max(updates, 1)
    out["clip/frac"] = out.get("clip/frac_low", 0.0) + out.get("clip/frac_high", 0.0)
    out.update({"grad/norm": sum(grad_norms) / max(updates, 1), "lr": run.scheduler.get_last_lr()[0],
                "updates": updates, "kl/beta": beta, "kl/early_stop": float(stopped)})
    return out
