"""The GRPO update: group-relative advantages, clipped surrogate, KL to the reference.

    rewards (P, G) --(KL penalty if kl_mode=reward)--> advantages (group-relative, per sequence)
    for each pass (num_iterations), for each minibatch: backprop micro-batches, one optimizer step

The ratio's denominator (``old_logprobs``): the learner's own log-probs of the samples before
this step's first update. With one minibatch, the first pass gets them for free (nothing has
been updated while it runs); with several, a no-grad pass computes them first.
"""

from __future__ import annotations

import torch

from reasoner.advantages import grpo_advantages
from reasoner.batch import score
from reasoner.learner import (Stats, StepBatch, approx_kl, build_micro_batches, effective_minibatches, global_std,
                              minibatch_normalisers, minibatch_plan, mismatch, no_grad_logprobs, optimizer_step,
                              record_surrogate, summarize)
from reasoner.loss import aggregate, kl_estimate, policy_loss


def update(run, batch: StepBatch, rewards: torch.Tensor, step: int) -> tuple[dict[str, float], torch.Tensor]:
    """One GRPO update on a rollout; ``rewards`` is (P, G). Returns (stats, per-sequence advantages)."""
    cfg, policy, dist = run.cfg, run.policy, run.dist
    n_minibatches = effective_minibatches(cfg.minibatches, len(batch), dist)
    plan = minibatch_plan(len(batch), n_minibatches, cfg.micro_batch_size, f"{cfg.seed}-{step}-{dist.rank}")
    minibatches = build_micro_batches(batch, plan, run.sampler.pad_id, run.device)
    micro = [mb for mbs in minibatches for mb in mbs]
    beta = run.kl.beta
    ref = no_grad_logprobs(run.reference, micro, cfg.temperature) if run.reference is not None else {}

    stats = Stats()
    if beta > 0 and cfg.kl_mode == "reward":  # a sequence-level penalty: the sum of per-token KL estimates
        seq_kl = torch.zeros(len(batch), device=run.device)
        for mb in micro:
            kl = kl_estimate(mb.sampler_logprobs, ref[id(mb)], cfg.kl_estimator) * mb.completion_mask
            seq_kl[mb.index] = kl.sum(-1)
            stats.add("kl/ref", (kl.sum() / mb.completion_mask.sum().clamp(min=1)).item(), mb.completion_mask.sum().item())
        rewards = rewards.to(run.device) - beta * seq_kl.view_as(rewards)
    batch_std = global_std(rewards, dist) if cfg.scale_rewards == "batch" and dist.world > 1 else None
    advantages = grpo_advantages(rewards, scale=cfg.scale_rewards, batch_std=batch_std).flatten().to(run.device)

    old: dict[int, torch.Tensor] = {}
    if cfg.old_logprobs == "sampler":
        old = {id(mb): mb.sampler_logprobs for mb in micro}
    elif n_minibatches > 1:
        old = no_grad_logprobs(policy, micro, cfg.temperature)
    tis: dict[int, torch.Tensor] = {}
    grad_norms, stopped = [], False
    for iteration in range(cfg.num_iterations):
        for mbs in minibatches:
            n_seq, n_tok = minibatch_normalisers(mbs, dist)
            kl_now = 0.0
            for j, mb in enumerate(mbs):
                first = iteration == 0
                logp, ent = score(policy, mb, cfg.temperature, entropy=first, entropy_grad=cfg.entropy_coef > 0)
                if id(mb) not in old:  # first pass of a single-minibatch plan: the policy has not moved
                    old[id(mb)] = logp.detach()
                if first:
                    mismatch(old[id(mb)] if cfg.old_logprobs == "learner" else logp, mb, stats)
                    stats.add("entropy", (ent.detach() * mb.completion_mask).sum().item() / max(mb.completion_mask.sum().item(), 1),
                              mb.completion_mask.sum().item())
                    if cfg.tis_cap > 0 and cfg.old_logprobs == "learner":
                        tis[id(mb)] = torch.exp(old[id(mb)] - mb.sampler_logprobs).clamp(max=cfg.tis_cap)
                out = policy_loss(logp, old[id(mb)], advantages[mb.index], mb.loss_mask, cfg.clip_low, cfg.clip_high,
                                  cfg.dual_clip, beta if cfg.kl_mode == "loss" else 0.0, ref.get(id(mb)),
                                  cfg.kl_estimator, cfg.loss_agg, n_seq, n_tok, cfg.max_new_tokens, tis.get(id(mb)))
                loss = out.loss
                if cfg.entropy_coef > 0:
                    loss = loss - cfg.entropy_coef * aggregate(ent, mb.loss_mask, "token-mean", num_tokens=n_tok)
                with dist.no_sync(policy, skip=j < len(mbs) - 1):  # gradients synchronise once per minibatch
                    (loss * dist.world).backward()
                w = mb.loss_mask.sum().item()
                stats.add("loss/total", loss.item(), 1)
                record_surrogate(stats, out, w)
                if cfg.kl_mode == "loss":
                    stats.add("kl/ref", out.kl.item(), w)
                kl_now += approx_kl(logp, old[id(mb)], mb.loss_mask) * w / n_tok
            grad_norms.append(optimizer_step(list(policy.parameters()), [run.optimizer], [run.scheduler], cfg.max_grad_norm))
            kl_now = dist.sum(kl_now)  # each process added its tokens' share of the global token mean
            stats.add("kl/approx", kl_now, 1)
            if cfg.target_kl and kl_now > cfg.target_kl:
                stopped = True
                break
        if stopped:
            break
    out = summarize(stats, grad_norms, run, beta, stopped)
    return out, advantages
