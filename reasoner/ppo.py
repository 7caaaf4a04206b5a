"""PPO with a learned critic and GAE (Schulman et al. 2017; for language models Ouyang et al. 2022).

One update, in plain words:

1. a no-grad pass scores the rollout: the policy's log-probs (the ratio's denominator), the
   reference's log-probs, and the critic's value of every completion prefix;
2. per-token rewards: the verifier's reward on each completion's last token, minus
   ``beta * KL_t`` on every token when the KL is in the reward (``kl_mode=reward``);
3. GAE turns rewards and values into per-token advantages and value targets (returns);
   advantages are whitened over the batch;
4. ``num_iterations`` epochs over ``minibatches`` random minibatches: clipped surrogate (plus the
   KL term when ``kl_mode=loss``, minus the entropy bonus) for the policy, clipped value loss for
   the critic; stop early when the approximate KL to the old policy passes ``early_stop_kl``.

The critic is a separate model initialised from the policy's weights with a fresh scalar head
(``critic=separate``), or a scalar head on the policy's last hidden state (``critic=shared``,
one model, the value loss trains the shared trunk too).
"""

from __future__ import annotations

import torch
from torch import nn

from reasoner import lora
from reasoner.advantages import gae, mean_std, whiten
from reasoner.batch import (MicroBatch, StepBatch, completion_logits, completion_logprobs, forward_inputs,
                            keep_positions, minibatch_plan, scored)
from reasoner.learner import Stats, minibatch_normalisers, optimizer_step
from reasoner.loss import approx_kl, kl_estimate, ppo_loss, sampler_mismatch, token_entropy, token_logprobs


class ValueHead(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.proj.weight)  # V = 0 at the start: no random baseline noise
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (b, T, H) -> (b, T)
        return self.proj(hidden.float()).squeeze(-1)


class Critic(nn.Module):
    """A transformer trunk and a value head: ``V(s_t)`` for every completion prefix."""

    def __init__(self, trunk: nn.Module, hidden_size: int):
        super().__init__()
        self.trunk = trunk
        self.head = ValueHead(hidden_size)

    @classmethod
    def from_policy_weights(cls, path: str, dtype, device) -> "Critic":
        from transformers import AutoModel

        trunk = AutoModel.from_pretrained(path, dtype=dtype).to(device)
        return cls(trunk, trunk.config.hidden_size).to(device)

    def forward(self, mb: MicroBatch) -> torch.Tensor:  # (b, T)
        hidden = self.trunk(**forward_inputs(mb), use_cache=False).last_hidden_state
        return self.head(_scored_hidden(mb, hidden))


def _scored_hidden(mb: MicroBatch, hidden: torch.Tensor) -> torch.Tensor:
    """(rows, L, H) hidden states of every position -> (b, T, H) at the positions that predict completion tokens."""
    return scored(mb, hidden if mb.score_positions is None else hidden[:, keep_positions(mb)])


def shared_forward(policy, head: ValueHead, mb: MicroBatch, temperature: float):
    """Policy logits and values from one forward pass of the policy (``critic=shared``)."""
    out = policy(**forward_inputs(mb), output_hidden_states=True, use_cache=False, logits_to_keep=keep_positions(mb))
    return scored(mb, out.logits), head(_scored_hidden(mb, out.hidden_states[-1]))


def _forward(run, mb: MicroBatch):
    """(logits, values) of the current policy and critic."""
    if run.cfg.critic == "shared":
        return shared_forward(run.train_policy, run.critic, mb, run.cfg.temperature)
    return completion_logits(run.train_policy, mb), run.critic(mb)


def update(run, batch: StepBatch, rewards: torch.Tensor, step: int) -> tuple[dict[str, float], torch.Tensor]:
    """One PPO update; ``rewards`` holds one outcome reward per sequence. Returns (stats, mean advantage per sequence)."""
    cfg, dist = run.cfg, run.dist
    beta = run.kl.beta
    stats = Stats()
    # minibatches every process can fill (each must run the same number of synchronised steps)
    n_minibatches = int(dist.min(min(cfg.minibatches, max(len(batch), 1))))
    plan = minibatch_plan(len(batch), n_minibatches, cfg.micro_batch_size, f"{cfg.seed}-{step}-{dist.rank}")
    minibatches = batch.micro_batches(plan, run.sampler.pad_id, run.device, cfg.shared_prefix)
    micro = [mb for mbs in minibatches for mb in mbs]

    # 1. the no-grad pass
    with torch.no_grad():
        for mb in micro:
            if run.reference is not None:
                mb.ref_logprobs = completion_logprobs(run.reference, mb, cfg.temperature)
        for mb in micro:
            logits, values = _forward(run, mb)
            learner = token_logprobs(logits, mb.completion_ids, cfg.temperature)
            mb.old_logprobs = learner if cfg.old_logprobs == "learner" else mb.sampler_logprobs
            mb.old_values = values.float()
            abs_diff, sampler_kl, n = sampler_mismatch(learner, mb.sampler_logprobs, mb.completion_mask)
            if n:
                stats.add("logprobs/sampler_abs_diff", abs_diff, n)
                stats.add("logprobs/sampler_kl", sampler_kl, n)
            stats.add("entropy", (token_entropy(logits, cfg.temperature) * mb.completion_mask).sum().item()
                      / max(mb.completion_mask.sum().item(), 1), mb.completion_mask.sum().item())

        # 2-3. per-token rewards, GAE, whitening (over the whole batch)
        outcome = rewards.flatten().to(run.device)
        for mb in micro:
            mask = mb.completion_mask.float()
            token_rewards = torch.zeros_like(mask)
            # the outcome reward goes on each row's last model token (tool outputs may follow none, but be safe)
            last = (mask * torch.arange(1, mask.shape[1] + 1, device=mask.device)).argmax(-1)
            token_rewards[torch.arange(len(mb.index)), last] = outcome[mb.index]
            if beta > 0:
                kl = kl_estimate(mb.old_logprobs, mb.ref_logprobs, cfg.kl_estimator) * mask
                stats.add("kl/ref", kl.sum().item() / max(mask.sum().item(), 1), mask.sum().item())
                if cfg.kl_mode == "reward":
                    token_rewards = token_rewards - beta * kl
            mb.advantages, mb.returns = gae(token_rewards, mb.old_values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:  # over the tokens of every process
            mean, std = mean_std(torch.cat([mb.advantages[mb.completion_mask.bool()] for mb in micro]), dist.sum)
            for mb in micro:
                mb.advantages = whiten(mb.advantages, mb.completion_mask, mean, std)
        returns_all = torch.cat([mb.returns[mb.completion_mask.bool()] for mb in micro])
        values_all = torch.cat([mb.old_values[mb.completion_mask.bool()] for mb in micro])
        var = returns_all.var(unbiased=False)
        stats.add("value/explained_variance", (1 - (returns_all - values_all).var(unbiased=False) / var).item()
                  if var > 0 else 0.0, 1)
        stats.add("value/mean", values_all.mean().item(), 1)
        stats.add("value/returns_mean", returns_all.mean().item(), 1)

    # 4. epochs over minibatches
    separate = run.critic_optimizer is not None
    policy_params = list(run.train_policy.parameters()) + ([] if separate else list(run.critic.parameters()))
    grad_norms, stopped = [], False
    with lora.adapter_dropout(run.bare_policy, bool(cfg.lora_rank and cfg.lora_dropout)):  # scoring passes: off
        for _ in range(cfg.num_iterations):
            for mbs in minibatches:
                n_seq, n_tok = minibatch_normalisers(mbs, dist)
                kl_now = 0.0
                for j, mb in enumerate(mbs):
                    logits, values = _forward(run, mb)
                    logp = token_logprobs(logits, mb.completion_ids, cfg.temperature)
                    out = ppo_loss(
                        aggregation=cfg.loss_agg, logp=logp, old_logp=mb.old_logprobs, advantages=mb.advantages,
                        mask=mb.loss_mask, values=values, old_values=mb.old_values, returns=mb.returns,
                        vf_coef=cfg.vf_coef, value_clip=cfg.value_clip, clip_low=cfg.clip_low, clip_high=cfg.clip_high,
                        dual_clip=cfg.dual_clip, beta=beta if cfg.kl_mode == "loss" else 0.0, ref_logp=mb.ref_logprobs,
                        kl_estimator=cfg.kl_estimator,
                        entropy=token_entropy(logits, cfg.temperature) if cfg.entropy_coef > 0 else None,
                        entropy_coef=cfg.entropy_coef, num_sequences=n_seq, num_tokens=n_tok,
                        max_tokens=cfg.max_new_tokens, world_size=dist.world)
                    last = j == len(mbs) - 1
                    with dist.no_sync(run.train_policy, skip=not last), dist.no_sync(run.critic, skip=not last or not separate):
                        out.loss.backward()  # DDP averages gradients over processes: the loss carries x world
                    w = mb.loss_mask.sum().item()
                    stats.add_policy_loss(out.policy, w)
                    stats.add("loss/value", out.value_loss.item(), 1)
                    stats.add("loss/total", out.total.item(), 1)
                    stats.add("clip/value_frac", out.value_clip_frac.item(), w)
                    kl_now += approx_kl(logp, mb.old_logprobs, mb.loss_mask) * w / n_tok
                kl_now = dist.sum(kl_now)
                grad_norms.append(optimizer_step(policy_params, run.optimizer, run.scheduler, cfg.max_grad_norm))
                if separate:  # the critic's gradient norm is clipped on its own, so it never scales the policy's
                    stats.add("grad/critic_norm", optimizer_step(list(run.critic.parameters()), run.critic_optimizer, None,
                                                                 cfg.max_grad_norm), 1)
                stats.add("kl/approx", kl_now, 1)
                if cfg.early_stop_kl and kl_now > cfg.early_stop_kl:
                    stopped = True
                    break
            if stopped:
                break
    out = stats.summary(grad_norms, run.scheduler.get_last_lr()[0], beta, stopped)
    seq_adv = torch.zeros(len(batch), device=run.device)
    for mb in micro:
        m = mb.completion_mask.float()
        seq_adv[mb.index] = (mb.advantages * m).sum(-1) / m.sum(-1).clamp(min=1)
    return out, seq_adv
