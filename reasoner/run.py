"""Build everything a training run needs once: data, verifiers, models, optimizers, sampler;
save and restore it at checkpoints."""

from __future__ import annotations

import logging
import math
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from reasoner import tasks
from reasoner import verifiers
from reasoner import checkpoint, lora, models
from reasoner.config import ConfigError, TrainConfig
from reasoner.dist import Dist, launched_world_size
from reasoner.kl import KLController
from reasoner.prompts import encode_prompts
from reasoner.rewards import Rewarder
from reasoner.samplers import Sampler, make_sampler
from reasoner.samplers.multiturn import tool_room, with_tools

log = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything a step needs, built once."""

    cfg: TrainConfig
    dir: Path
    dist: Dist
    train_policy: torch.nn.Module  # what forward/backward go through: the policy, wrapped for DDP/FSDP by accelerate
    bare_policy: torch.nn.Module  # the policy itself: what the sampler syncs from, checkpoints save, the reference copies
    reference: torch.nn.Module | None
    critic: torch.nn.Module | None  # PPO: a Critic (separate) or a ValueHead (shared)
    tokenizer: object
    sampler: Sampler
    optimizer: torch.optim.Optimizer
    critic_optimizer: torch.optim.Optimizer | None
    scheduler: torch.optim.lr_scheduler.LRScheduler
    kl: KLController
    rewarder: Rewarder
    reward_pool: ThreadPoolExecutor  # runs the verifiers beside the sampler (rollout_chunks > 1)
    train_examples: list
    train_prompt_ids: list[list[int]]
    eval_examples: list
    device: torch.device
    train_labels: list[str]  # the task (of a mixture: its label) of each training example
    eval_labels: list[str]  # ... and of each held-out example
    updating: bool = False  # True while a step's update is applied and not yet complete
    reporter: object = None  # reasoner.reporting.Reporter for --report-to (main process)


def _device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} asked for but CUDA is not available; use --device cpu")
    return torch.device(spec)


def _encode_train(tokenizer, examples: list, labels: list[str], cfg: TrainConfig) -> tuple[list, list[str], list]:
    ids = encode_prompts(tokenizer, [ex.prompt for ex in examples], cfg.system_prompt)
    kept = [(ex, label, p) for ex, label, p in zip(examples, labels, ids) if len(p) <= cfg.max_prompt_tokens]
    if len(kept) < len(examples):
        log.warning("skipped %d prompt(s) longer than max_prompt_tokens=%d", len(examples) - len(kept), cfg.max_prompt_tokens)
    if not kept:
        raise ConfigError(f"no training prompt fits in max_prompt_tokens={cfg.max_prompt_tokens}")
    return [e for e, _, _ in kept], [label for _, label, _ in kept], [p for _, _, p in kept]


def mix(parts: list[tuple[str, list, float]]) -> tuple[list, list[str]]:
    """The training examples of a task mixture and the label of each: part ``i`` takes the share
    ``w_i / sum(w)`` of all the parts' examples together, its own examples cycled to fill it, so a
    step's prompts come from each part in proportion to its weight. One part: its examples as they are."""
    if len(parts) == 1:
        label, examples, _ = parts[0]
        return list(examples), [label] * len(examples)
    total, weights = sum(len(ex) for _, ex, _ in parts), sum(w for _, _, w in parts)
    out, labels = [], []
    for label, examples, weight in parts:
        n = max(1, round(total * weight / weights))
        out += [examples[i % len(examples)] for i in range(n)]
        labels += [label] * n
    return out, labels


def load_train(cfg: TrainConfig) -> tuple[list, list[str], list, list[str]]:
    """(training examples, their task labels, held-out examples, their labels) of ``cfg.task``, one
    task or a mixture (`reasoner.tasks.mixture`); the first ``eval_size`` held-out problems of each part."""
    parts, held, held_labels = [], [], []
    for label, spec, weight in tasks.mixture(cfg.task):
        train_task = tasks.load(spec, split="train")
        if not len(train_task):
            raise ConfigError(f"task {spec!r} has no training examples")
        parts.append((label, list(train_task), weight))
        if cfg.eval_size and not cfg.eval_task:
            if train_task.split is None:
                log.warning("task %s has no held-out split: pass --eval-task to evaluate before and after training",
                            spec)
                continue
            mine = list(tasks.load(spec, split="test"))[: cfg.eval_size]
            held, held_labels = held + mine, held_labels + [label] * len(mine)
    if cfg.eval_size and cfg.eval_task:
        for label, spec, _ in tasks.mixture(cfg.eval_task):
            mine = list(tasks.load(spec, split="test"))[: cfg.eval_size]
            held, held_labels = held + mine, held_labels + [label] * len(mine)
    examples, labels = mix(parts)
    return examples, labels, held, held_labels


def _adamw(params, lr: float, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    # fused: one kernel over all parameters (10x faster than foreach on CPU, docs/benchmarks.md)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=device.type in ("cpu", "cuda"))


def lr_factor(cfg: TrainConfig):
    """The learning-rate multiplier per optimizer step: linear warm-up from zero over ``warmup_steps``
    steps, then ``lr_schedule``: constant, or linear/cosine decay to zero at the last step."""
    per_step = cfg.num_iterations * cfg.minibatches
    warmup, total = cfg.warmup_steps * per_step, cfg.steps * per_step

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / (warmup + 1)
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        if cfg.lr_schedule == "linear":
            return 1.0 - progress
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return factor


def setup(cfg: TrainConfig, run_dir: Path, state: dict | None) -> Run:
    """Load models, data and verifiers; restore a checkpoint's state when resuming."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    world = launched_world_size()  # checked before any process group is set up
    if cfg.prompts_per_step % world:
        raise ConfigError(f"prompts_per_step ({cfg.prompts_per_step}) must be divisible by the number of "
                          f"processes ({world}): each process samples whole groups")
    if cfg.minibatches > cfg.prompts_per_step // world * cfg.group_size:
        raise ConfigError(f"minibatches ({cfg.minibatches}) exceeds the sequences each of the {world} "
                          f"processes learns from per step")
    dist = Dist(_device(cfg.device))
    device = dist.device
    torch.manual_seed(cfg.seed + dist.rank)  # each process samples its own completions
    random.seed(cfg.seed)
    try:
        train_all, train_labels, eval_examples, eval_labels = load_train(cfg)
    except tasks.TaskError as exc:
        raise ConfigError(str(exc)) from None
    try:
        rewarder = Rewarder(cfg.rewards, cfg.verifier_options)
        used = {ex.verifier for ex in train_all + eval_examples}
        for name in sorted(used):
            rewarder.verifier(name)  # an unknown verifier fails here, before any model is loaded
        unused = sorted(set(cfg.verifier_options) - used - set(cfg.rewards))
        if unused:
            raise ConfigError(f"--verifier-option for {', '.join(unused)}: no reward term or example uses that "
                              f"verifier (used: {', '.join(sorted(used | set(cfg.rewards) - {'task'}))})")
    except verifiers.VerifierError as exc:
        raise ConfigError(str(exc)) from None
    base = models.resolve(cfg.model)
    tokenizer = models.load_tokenizer(base)
    current = state["model_dir"] if state else base
    dtype = getattr(torch, cfg.dtype)
    if cfg.lora_rank:  # the base model with adapters: fresh, or a checkpoint's
        policy = models.load_model(base, cfg.dtype, device)
        policy = lora.load(policy, current) if state else lora.wrap(policy, cfg.lora_rank, cfg.lora_alpha,
                                                                    cfg.lora_targets, cfg.lora_dropout)
    else:
        policy = models.load_model(current, cfg.dtype, device)
    policy.eval()  # no dropout: the learner must score tokens exactly as the sampler drew them
    if cfg.gradient_checkpointing:
        models.enable_gradient_checkpointing(policy)
    reference = None
    if cfg.beta > 0 and cfg.lora_rank:
        reference = lora.AdaptersOff(policy)  # the base weights, shared with the policy
    elif cfg.beta > 0:
        reference = models.load_model(base, cfg.dtype, device).eval().requires_grad_(False)
        if state and state.get("reference") is not None:  # refreshed during the run
            reference.load_state_dict(state["reference"])

    critic, critic_optimizer = None, None
    policy_params = [p for p in policy.parameters() if p.requires_grad]  # LoRA: the adapters only
    if cfg.algorithm == "ppo":
        from reasoner.ppo import Critic, ValueHead

        if cfg.critic == "separate":
            critic = Critic.from_policy_weights(base, dtype, device).eval()
            critic_optimizer = _adamw(critic.parameters(), cfg.critic_learning_rate, cfg.weight_decay, device)
        else:
            critic = ValueHead(policy.config.hidden_size).to(device)
            policy_params += list(critic.parameters())
        if state and state.get("critic") is not None:
            critic.load_state_dict(state["critic"])
    optimizer = _adamw(policy_params, cfg.learning_rate, cfg.weight_decay, device)
    bare_policy = policy
    train_policy, optimizer = dist.prepare(policy, optimizer)
    if critic_optimizer is not None:
        critic, critic_optimizer = dist.prepare(critic, critic_optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
    kl = KLController(cfg.beta, cfg.adaptive_kl_target, cfg.adaptive_kl_horizon)
    if state:
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
            if critic_optimizer is not None:
                critic_optimizer.load_state_dict(state["critic_optimizer"])
        else:
            log.warning("the checkpoint has no optimizer state (saved with --no-save-optimizer): AdamW starts afresh")
        scheduler.load_state_dict(state["scheduler"])
        kl.beta = state.get("kl_beta", cfg.beta)
        checkpoint.set_rng_state(state["rng"])
    train_examples, train_labels, train_prompt_ids = _encode_train(tokenizer, train_all, train_labels, cfg)
    if cfg.vllm_server_url and dist.world > 1:
        raise ConfigError("--vllm-server-url with several processes: each would push weights into the same "
                          "server while the others sample from it; leave it out and each process starts its own")
    # the sampler starts from the policy's current weights (a resumed run's checkpoint)
    sampler = make_sampler(cfg.sampler, base if cfg.lora_rank else current, tokenizer, policy=bare_policy, dtype=cfg.dtype, seed=cfg.seed,
                           max_model_len=min(cfg.max_prompt_tokens + cfg.max_new_tokens
                                             + tool_room(cfg.tools, cfg.max_tool_calls, cfg.tool_output_tokens),
                                             getattr(bare_policy.config, "max_position_embeddings", 1 << 30)),
                           gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, kv_cache_gib=cfg.vllm_kv_cache_gib,
                           sleep_between_steps=cfg.vllm_sleep, server_url=cfg.vllm_server_url,
                           log_path=run_dir / (f"vllm-server-{dist.rank}.log" if dist.world > 1 else "vllm-server.log"),
                           fallback=cfg.sampler_fallback)
    sampler = with_tools(sampler, tokenizer, cfg.tools, cfg.tool_options, cfg.max_tool_calls, cfg.tool_output_tokens)
    if cfg.lora_rank and state:  # the engine loaded the base: give it the checkpoint's adapters
        sampler.load_weights(lora.merged_weights(bare_policy))
    return Run(cfg, run_dir, dist, train_policy, bare_policy, reference, critic, tokenizer, sampler, optimizer, critic_optimizer,
               scheduler, kl, rewarder, ThreadPoolExecutor(1, thread_name_prefix="rewards"), train_examples,
               train_prompt_ids, eval_examples, device, train_labels, eval_labels)


def save(run: Run, step: int, before: dict | None) -> None:
    """Write a checkpoint (the main process; the others wait until it is complete)."""
    if not run.dist.is_main:
        run.dist.barrier()
        return
    extra = {"eval_before": before, "kl_beta": run.kl.beta}
    optimizer = run.optimizer if run.cfg.save_optimizer else None
    if run.critic is not None:
        extra["critic"] = run.dist.unwrap(run.critic).state_dict()
    if run.critic_optimizer is not None and optimizer is not None:
        extra["critic_optimizer"] = run.critic_optimizer.state_dict()
    if run.reference is not None and run.cfg.ref_refresh_every:
        extra["reference"] = run.reference.state_dict()
    path = checkpoint.save(run.dir, step, run.bare_policy, run.tokenizer, optimizer, run.scheduler, extra,
                           keep=run.cfg.keep_checkpoints)
    if run.cfg.lora_rank:
        lora.save_base_identity(path, run.cfg.model)
    run.dist.barrier()
