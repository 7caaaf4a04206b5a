"""The GRPO update, top to bottom: group-relative advantages, clipped surrogate, KL to the reference.

1. split the rollout into minibatches and pack them into micro-batches (``reasoner.batch``);
2. the reference's log-probs of every sample (a no-grad pass, when ``beta > 0``);
3. advantages: the rewards (minus ``beta`` times each sequence's KL when ``kl_mode=reward``)
   made group-relative, ``A = (r - mean) / (std + eps)``, one per sequence;
4. the ratio's denominator (``old_logprobs``): the learner's own log-probs of the samples before
   this step's first update. With one minibatch, the first pass gets them for free (nothing has
   been updated while it runs); with several, a no-grad pass computes them first. Or the
   sampler's log-probs (``old_logprobs=sampler``);
5. ``num_iterations`` passes; per minibatch, backpropagate each micro-batch's share of the loss
   (the variant of ``loss_agg`` from ``reasoner.loss.POLICY_LOSSES``), then one optimizer step;
   stop early when the approximate KL to the old policy passes ``early_stop_kl``.

Every tensor of a micro-batch (old, reference and sampler log-probs, advantages, TIS weights)
is stored on the micro-batch itself.
"""

from __future__ import annotations

import torch

from reasoner import lora
from reasoner.advantages import grpo_advantages, mean_std
from reasoner.batch import StepBatch, completion_logits, completion_logprobs, minibatch_plan
from reasoner.learner import Stats, minibatch_normalisers, optimizer_step
from reasoner.loss import (POLICY_LOSSES, approx_kl, kl_estimate, sampler_mismatch, token_entropy,
                           token_logprobs, truncated_is_weights)


def update(run, batch: StepBatch, rewards: torch.Tensor, step: int) -> tuple[dict[str, float], torch.Tensor]:
    """One GRPO update on a rollout; ``rewards`` is (P, G). Returns (stats, per-sequence advantages)."""
    cfg, policy, dist = run.cfg, run.train_policy, run.dist
    beta = run.kl.beta
    dropout = bool(cfg.lora_rank and cfg.lora_dropout)
    stats = Stats()

    # 1. minibatches every process can fill (each must run the same number of synchronised steps)
    n_minibatches = int(dist.min(min(cfg.minibatches, max(len(batch), 1))))
    plan = minibatch_plan(len(batch), n_minibatches, cfg.micro_batch_size, f"{cfg.seed}-{step}-{dist.rank}")
    minibatches = batch.micro_batches(plan, run.sampler.pad_id, run.device, cfg.shared_prefix)
    micro = [mb for mbs in minibatches for mb in mbs]

    # 2. the reference's log-probs
    if run.reference is not None:
        with torch.no_grad():
            for mb in micro:
                mb.ref_logprobs = completion_logprobs(run.reference, mb, cfg.temperature)

    # 3. advantages
    if beta > 0 and cfg.kl_mode == "reward":  # a sequence-level penalty: the sum of per-token KL estimates
        seq_kl = torch.zeros(len(batch), device=run.device)
        for mb in micro:
            kl = kl_estimate(mb.sampler_logprobs, mb.ref_logprobs, cfg.kl_estimator) * mb.completion_mask
            seq_kl[mb.index] = kl.sum(-1)
            stats.add("kl/ref", (kl.sum() / mb.completion_mask.sum().clamp(min=1)).item(), mb.completion_mask.sum().item())
        rewards = rewards.to(run.device) - beta * seq_kl.view_as(rewards)
    batch_std = None
    if cfg.scale_rewards == "batch" and dist.world > 1:  # the std of the whole batch, every process's share
        batch_std = mean_std(rewards, dist.sum, unbiased=True)[1]
    advantages = grpo_advantages(rewards, scale=cfg.scale_rewards, batch_std=batch_std).flatten().to(run.device)
    for mb in micro:
        mb.advantages = advantages[mb.index]

    # 4. the ratio's denominator
    if cfg.old_logprobs == "sampler":
        for mb in micro:
            mb.old_logprobs = mb.sampler_logprobs
    elif n_minibatches > 1 or dropout:  # a pass of its own: the gradient passes see LoRA dropout
        with torch.no_grad():
            for mb in micro:
                mb.old_logprobs = completion_logprobs(policy, mb, cfg.temperature)

    # 5. passes over minibatches
    policy_loss = POLICY_LOSSES[cfg.loss_agg]
    grad_norms, stopped = [], False
    with lora.adapter_dropout(run.bare_policy, dropout):  # off (eval mode) in every scoring pass
        for iteration in range(cfg.num_iterations):
            for mbs in minibatches:
                n_seq, n_tok = minibatch_normalisers(mbs, dist)
                kl_now = 0.0
                for j, mb in enumerate(mbs):
                    first = iteration == 0
                    logits = completion_logits(policy, mb)
                    logp = token_logprobs(logits, mb.completion_ids, cfg.temperature)
                    ent = None
                    if first or cfg.entropy_coef > 0:  # a statistic on the first pass; with a bonus, part of the loss
                        ent = token_entropy(logits if cfg.entropy_coef > 0 else logits.detach(), cfg.temperature)
                    if mb.old_logprobs is None:  # first pass of a single-minibatch plan: the policy has not moved
                        mb.old_logprobs = logp.detach()
                    if first:
                        learner = mb.old_logprobs if cfg.old_logprobs == "learner" else logp
                        abs_diff, sampler_kl, n = sampler_mismatch(learner, mb.sampler_logprobs, mb.completion_mask)
                        if n:
                            stats.add("logprobs/sampler_abs_diff", abs_diff, n)
                            stats.add("logprobs/sampler_kl", sampler_kl, n)
                        stats.add("entropy", (ent.detach() * mb.completion_mask).sum().item()
                                  / max(mb.completion_mask.sum().item(), 1), mb.completion_mask.sum().item())
                        if cfg.tis_cap > 0 and cfg.old_logprobs == "learner":
                            mb.tis_weights = truncated_is_weights(mb.old_logprobs, mb.sampler_logprobs, cfg.tis_cap)
                    out = policy_loss(
                        logp=logp, old_logp=mb.old_logprobs, advantages=mb.advantages, mask=mb.loss_mask,
                        clip_low=cfg.clip_low, clip_high=cfg.clip_high, dual_clip=cfg.dual_clip,
                        beta=beta if cfg.kl_mode == "loss" else 0.0, ref_logp=mb.ref_logprobs,
                        kl_estimator=cfg.kl_estimator, is_weights=mb.tis_weights, entropy=ent,
                        entropy_coef=cfg.entropy_coef, num_sequences=n_seq, num_tokens=n_tok,
                        max_tokens=cfg.max_new_tokens, world_size=dist.world)
                    with dist.no_sync(policy, skip=j < len(mbs) - 1):  # gradients synchronise once per minibatch
                        out.loss.backward()
                    w = mb.loss_mask.sum().item()
                    stats.add("loss/total", out.total.item(), 1)
                    stats.add_policy_loss(out, w)
                    if cfg.kl_mode == "loss":
                        stats.add("kl/ref", out.kl.item(), w)
                    kl_now += approx_kl(logp, mb.old_logprobs, mb.loss_mask) * w / n_tok
                grad_norms.append(optimizer_step(list(policy.parameters()), run.optimizer, run.scheduler, cfg.max_grad_norm))
                kl_now = dist.sum(kl_now)  # each process added its tokens' share of the global token mean
                stats.add("kl/approx", kl_now, 1)
                if cfg.early_stop_kl and kl_now > cfg.early_stop_kl:
                    stopped = True
                    break
            if stopped:
                break
    return stats.summary(grad_norms, run.scheduler.get_last_lr()[0], beta, stopped), advantages
