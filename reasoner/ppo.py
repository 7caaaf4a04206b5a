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
   the critic; stop early when the approximate KL to the old policy passes ``target_kl``.

The critic is a separate model initialised from the policy's weights with a fresh scalar head
(``critic=separate``), or a scalar head on the policy's last hidden state (``critic=shared``,
one model, the value loss trains the shared trunk too).
"""

from __future__ import annotations

import torch
from torch import nn

from reasoner.advantages import gae
from reasoner.batch import MicroBatch, completion_logits
from reasoner.learner import (Stats, StepBatch, approx_kl, build_micro_batches, effective_minibatches,
                              minibatch_normalisers, minibatch_plan, mismatch, no_grad_logprobs, optimizer_step,
                              record_surrogate, summarize)
from reasoner.loss import aggregate, kl_estimate, policy_loss, token_entropy, token_logprobs, value_loss


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
        width = mb.completion_ids.shape[1]
        hidden = self.trunk(input_ids=mb.input_ids, attention_mask=mb.attention_mask,
                            position_ids=mb.position_ids, use_cache=False).last_hidden_state
        return self.head(hidden[:, -(width + 1):-1])


def shared_forward(policy, head: ValueHead, mb: MicroBatch, temperature: float):
    """Policy logits and values from one forward pass of the policy (``critic=shared``)."""
    width = mb.completion_ids.shape[1]
    out = policy(input_ids=mb.input_ids, attention_mask=mb.attention_mask, position_ids=mb.position_ids,
                 output_hidden_states=True, use_cache=False, logits_to_keep=width + 1)
    logits = out.logits[:, :-1]
    values = head(out.hidden_states[-1][:, -(width + 1):-1])
    return logits, values


def _forward(run, mb: MicroBatch):
    """(logits, values) of the current policy and critic."""
    if run.cfg.critic == "shared":
        return shared_forward(run.policy, run.critic, mb, run.cfg.temperature)
    return completion_logits(run.policy, mb), run.critic(mb)


def update(run, batch: StepBatch, rewards: torch.Tensor, step: int) -> tuple[dict[str, float], torch.Tensor]:
    """One PPO update; ``rewards`` holds one outcome reward per sequence. Returns (stats, mean advantage per sequence)."""
    cfg, dist = run.cfg, run.dist
    n_minibatches = effective_minibatches(cfg.minibatches, len(batch), dist)
    plan = minibatch_plan(len(batch), n_minibatches, cfg.micro_batch_size, f"{cfg.seed}-{step}-{dist.rank}")
    minibatches = build_micro_batches(batch, plan, run.sampler.pad_id, run.device)
    micro = [mb for mbs in minibatches for mb in mbs]
    beta = run.kl.beta
    stats = Stats()

    # 1. the no-grad pass
    with torch.no_grad():
        ref = no_grad_logprobs(run.reference, micro, cfg.temperature) if run.reference is not None else {}
        old, old_values = {}, {}
        for mb in micro:
            logits, values = _forward(run, mb)
            old[id(mb)] = (token_logprobs(logits, mb.completion_ids, cfg.temperature)
                           if cfg.old_logprobs == "learner" else mb.sampler_logprobs)
            old_values[id(mb)] = values.float()
            mismatch(token_logprobs(logits, mb.completion_ids, cfg.temperature), mb, stats)
            stats.add("entropy", (token_entropy(logits, cfg.temperature) * mb.completion_mask).sum().item()
                      / max(mb.completion_mask.sum().item(), 1), mb.completion_mask.sum().item())

        # 2-3. per-token rewards, GAE, whitening (over the whole batch)
        outcome = rewards.flatten().to(run.device)
        adv, ret = {}, {}
        for mb in micro:
            mask = mb.completion_mask.float()
            token_rewards = torch.zeros_like(mask)
            last = (mask.sum(-1) - 1).clamp(min=0).long()
            token_rewards[torch.arange(len(mb.index)), last] = outcome[mb.index]
            if beta > 0:
                kl = kl_estimate(old[id(mb)], ref[id(mb)], cfg.kl_estimator) * mask
                stats.add("kl/ref", kl.sum().item() / max(mask.sum().item(), 1), mask.sum().item())
                if cfg.kl_mode == "reward":
                    token_rewards = token_rewards - beta * kl
            adv[id(mb)], ret[id(mb)] = gae(token_rewards, old_values[id(mb)], mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages:  # over the tokens of every process
            flat_adv = torch.cat([adv[id(mb)][mb.completion_mask.bool()] for mb in micro]).double()
            n = dist.sum(flat_adv.numel())
            mean = dist.sum(flat_adv.sum().item()) / n
            std = max(dist.sum((flat_adv ** 2).sum().item()) / n - mean * mean, 0.0) ** 0.5
            for mb in micro:
                adv[id(mb)] = (adv[id(mb)] - mean) / (std + 1e-8) * mb.completion_mask
        returns_all = torch.cat([ret[id(mb)][mb.completion_mask.bool()] for mb in micro])
        values_all = torch.cat([old_values[id(mb)][mb.completion_mask.bool()] for mb in micro])
        var = returns_all.var(unbiased=False)
        stats.add("value/explained_variance", (1 - (returns_all - values_all).var(unbiased=False) / var).item()
                  if var > 0 else 0.0, 1)
        stats.add("value/mean", values_all.mean().item(), 1)
        stats.add("value/returns_mean", returns_all.mean().item(), 1)

    # 4. epochs over minibatches
    separate = run.critic_optimizer is not None
    policy_params = list(run.policy.parameters()) + ([] if separate else list(run.critic.parameters()))
    grad_norms, stopped = [], False
    for _ in range(cfg.num_iterations):
        for mbs in minibatches:
            n_seq, n_tok = minibatch_normalisers(mbs, dist)
            kl_now = 0.0
            for j, mb in enumerate(mbs):
                logits, values = _forward(run, mb)
                logp = token_logprobs(logits, mb.completion_ids, cfg.temperature)
                out = policy_loss(logp, old[id(mb)], adv[id(mb)], mb.loss_mask, cfg.clip_low, cfg.clip_high,
                                  cfg.dual_clip, beta if cfg.kl_mode == "loss" else 0.0, ref.get(id(mb)),
                                  cfg.kl_estimator, cfg.loss_agg, n_seq, n_tok, cfg.max_new_tokens)
                vloss, vclip = value_loss(values, old_values[id(mb)], ret[id(mb)], mb.loss_mask, cfg.value_clip, n_tok)
                loss = out.loss + cfg.vf_coef * vloss
                if cfg.entropy_coef > 0:
                    ent = token_entropy(logits, cfg.temperature)
                    loss = loss - cfg.entropy_coef * aggregate(ent, mb.loss_mask, "token-mean", num_tokens=n_tok)
                last = j == len(mbs) - 1
                with dist.no_sync(run.policy, skip=not last), dist.no_sync(run.critic, skip=not last or not separate):
                    (loss * dist.world).backward()  # DDP averages gradients over processes
                w = mb.loss_mask.sum().item()
                record_surrogate(stats, out, w)
                stats.add("loss/value", vloss.item(), 1)
                stats.add("loss/total", loss.item(), 1)
                stats.add("clip/value_frac", vclip.item(), w)
                kl_now += approx_kl(logp, old[id(mb)], mb.loss_mask) * w / n_tok
            kl_now = dist.sum(kl_now)
            grad_norms.append(optimizer_step(policy_params, [run.optimizer], [run.scheduler], cfg.max_grad_norm))
            if separate:  # the critic's gradient norm is clipped on its own, so it never scales the policy's
                stats.add("grad/critic_norm", optimizer_step(list(run.critic.parameters()), [run.critic_optimizer], [],
                                                             cfg.max_grad_norm), 1)
            stats.add("kl/approx", kl_now, 1)
            if cfg.target_kl and kl_now > cfg.target_kl:
                stopped = True
                break
        if stopped:
            break
    out = summarize(stats, grad_norms, run, beta, stopped)
    seq_adv = torch.zeros(len(batch), device=run.device)
    for mb in micro:
        m = mb.completion_mask.float()
        seq_adv[mb.index] = (adv[id(mb)] * m).sum(-1) / m.sum(-1).clamp(min=1)
    return out, seq_adv
