"""What the GRPO and PPO updates truly share: the loss normalisers of a minibatch, the
optimizer step, and the statistics they log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch


def minibatch_normalisers(mbs: Sequence, dist) -> tuple[int, int]:
    """Sequences and loss tokens of a whole minibatch (a list of ``MicroBatch``) over every process: the
    loss normalisers, so that micro-batching and sharding leave the loss (and, with DDP's averaging x world,
    the gradient) unchanged."""
    n_seq = int(dist.sum(sum(len(mb.index) for mb in mbs)))
    n_tok = int(dist.sum(sum(mb.loss_mask.sum().item() for mb in mbs))) or 1
    return n_seq, n_tok


def optimizer_step(parameters: Sequence[torch.nn.Parameter], optimizer: torch.optim.Optimizer, scheduler,
                   max_grad_norm: float) -> float:
    """Clip the global gradient norm (0: no clipping), step the optimizer (and the scheduler, unless None),
    zero the gradients; returns the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm if max_grad_norm > 0 else float("inf"))
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


@dataclass
class Stats:
    """Token-weighted running means of learner statistics."""

    sums: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, value: float, weight: float = 1.0) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value * weight
        self.weights[key] = self.weights.get(key, 0.0) + weight

    def add_policy_loss(self, out, weight: float) -> None:
        """One micro-batch's policy-loss statistics (a ``loss.PolicyLossOutput``)."""
        self.add("loss/policy", out.policy_loss.item(), 1)
        self.add("clip/frac_low", out.clip_low.item(), weight)
        self.add("clip/frac_high", out.clip_high.item(), weight)
        self.add("clip/frac_dual", out.clip_dual.item(), weight)

    def summary(self, grad_norms: list[float], lr: float, beta: float, stopped: bool) -> dict[str, float]:
        """Per-step learner metrics. Losses are summed per minibatch (micro-batch shares) and averaged
        over optimizer steps; everything else is a token- or count-weighted mean."""
        out = {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}
        updates = len(grad_norms)
        for key in [k for k in self.sums if k.startswith("loss/")]:
            out[key] = self.sums[key] / max(updates, 1)
        out["clip/frac"] = out.get("clip/frac_low", 0.0) + out.get("clip/frac_high", 0.0)
        out.update({"grad/norm": sum(grad_norms) / max(updates, 1), "lr": lr, "updates": updates, "kl/beta": beta,
                    "kl/early_stop": float(stopped)})
        return out
