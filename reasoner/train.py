"""Training: GRPO (Shao et al. 2024, https://arxiv.org/abs/2402.03300) or PPO with a critic.

What one step does, in plain words:

1. **rollout** — take ``prompts_per_step`` prompts; sample ``group_size`` completions for each
   from the current policy (temperature ``temperature``), keeping each token's sampling log-prob.
   With dynamic sampling, groups whose completions all got the same reward are dropped and more
   prompts are sampled to refill the batch (at most ``dynamic_sampling_rounds`` more rounds).
2. **reward** — judge every completion with the verifiers of the settings; the reward is the
   weighted sum of their (binary) rewards, plus the overlong penalty when it is on.
3. **advantage** — GRPO: within each group, ``A = (r - mean) / (std + eps)``, no critic; a group
   whose completions all got the same reward teaches nothing and gets A = 0. PPO: GAE over the
   critic's values of every completion prefix (``reasoner.ppo``).
4. **loss** — the clipped surrogate on every completion token with the ratio to the sampling
   policy, anchored to the frozen reference model by ``beta`` times a KL estimate, in the loss
   (GRPO) or in the reward (PPO classic); one loss function per ``loss_agg`` variant
   (``reasoner.loss.POLICY_LOSSES``).
5. **step** — backpropagate micro-batch by micro-batch, clip the gradient norm, one AdamW step
   per minibatch; ``num_iterations`` passes; then hand the new weights to the sampler.
6. **log** — one line of metrics.jsonl, the step's samples to samples.jsonl, checkpoints.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from statistics import fmean, pstdev

import torch
from tqdm.auto import tqdm

from reasoner import tasks
from reasoner import checkpoint, grpo, ppo
from reasoner.config import ConfigError, TrainConfig, dump_yaml
from reasoner.evaluate import evaluate
from reasoner.batch import StepBatch
from reasoner.rewards import TASK, Rewarder, Judgement
from reasoner.samplers import Completion, SamplingParams
from reasoner.run import Run, save, setup

log = logging.getLogger(__name__)


def prompt_indices(step: int, per_step: int, n: int, seed: int) -> list[int]:
    """Indices of the prompts of ``step``: a fresh seeded permutation of the data every epoch."""
    out, pos = [], step * per_step
    while len(out) < per_step:
        epoch, offset = divmod(pos, n)
        order = list(range(n))
        random.Random(f"{seed}-{epoch}").shuffle(order)
        take = min(per_step - len(out), n - offset)
        out.extend(order[offset:offset + take])
        pos += take
    return out


@dataclass
class Groups:
    """Sampled and judged groups: ``groups[g]`` holds the completions of ``examples[g]``."""

    examples: list
    prompts: list[list[int]]
    groups: list[list[Completion]]
    judged: Judgement  # flattened over groups, G entries per group
    rewards: torch.Tensor  # (P, G) reward of each completion, shaping included

    def select(self, keep: list[int]) -> "Groups":
        g = len(self.groups[0])
        judged = self.judged.select([i * g + j for i in keep for j in range(g)])
        return Groups([self.examples[i] for i in keep], [self.prompts[i] for i in keep],
                      [self.groups[i] for i in keep], judged, self.rewards[keep])

    def extend(self, other: "Groups") -> "Groups":
        return Groups(self.examples + other.examples, self.prompts + other.prompts, self.groups + other.groups,
                      self.judged + other.judged, torch.cat([self.rewards, other.rewards]))


def overlong_penalty(length: int, max_tokens: int, buffer: int) -> float:
    """DAPO's soft overlong punishment: 0 up to ``max - buffer`` tokens, then down linearly to -1 at ``max``."""
    start = max_tokens - buffer
    return 0.0 if length <= start else -min(length - start, buffer) / buffer


def prompt_seed(seed: int, step: int, slot: str) -> int:
    return random.Random(f"{seed}-{step}-{slot}").getrandbits(31)


def sample(run: Run, indices: list[int], seconds: dict[str, float], step: int, slots: list[str]) -> Groups:
    """Steps 1-2 for some prompts: sample groups, judge them, shape the rewards; adds to ``seconds``.
    ``slots`` name each prompt's place in the step (its seed with ``seed_per_prompt``)."""
    cfg = run.cfg
    examples = [run.train_examples[i] for i in indices]
    prompts = [run.train_prompt_ids[i] for i in indices]
    seeds = [prompt_seed(cfg.seed, step, slot) for slot in slots] if cfg.seed_per_prompt else None
    # Pipelined in chunks: the verifiers judge chunk k (in their worker processes or containers)
    # while the sampler generates chunk k + 1. time/verify counts only the wait that is not hidden.
    bounds = [len(indices) * k // cfg.rollout_chunks for k in range(cfg.rollout_chunks + 1)]
    groups, pending = [], []
    for lo, hi in zip(bounds, bounds[1:]):
        if lo == hi:
            continue
        params = SamplingParams(cfg.max_new_tokens, cfg.temperature, cfg.top_p,
                                prompt_seeds=None if seeds is None else tuple(seeds[lo:hi]))
        t0 = time.perf_counter()
        chunk = run.sampler.generate(prompts[lo:hi], cfg.group_size, params)
        seconds["generate"] += time.perf_counter() - t0
        groups += chunk
        texts = [c.text for g in chunk for c in g]
        judged = [ex for ex in examples[lo:hi] for _ in range(cfg.group_size)]
        pending.append(run.reward_pool.submit(run.rewarder.judge, texts, judged))
    t1 = time.perf_counter()
    parts = [f.result() for f in pending]
    seconds["verify"] += time.perf_counter() - t1
    judged = parts[0]
    for part in parts[1:]:
        judged = judged + part
    completions = [c for g in groups for c in g]
    rewards = torch.tensor(judged.rewards, dtype=torch.float32)
    if cfg.overlong == "penalty":
        rewards += torch.tensor([overlong_penalty(len(c.token_ids), cfg.max_new_tokens, cfg.overlong_buffer)
                                 for c in completions])
    return Groups(examples, prompts, groups, judged, rewards.view(len(examples), cfg.group_size))


def rollout(run: Run, step: int, seconds: dict[str, float]) -> tuple[Groups, Groups, dict[str, float]]:
    """(first-round groups, the groups to learn from, sampling stats). Without dynamic sampling both are the same."""
    cfg, dist = run.cfg, run.dist
    slots = dist.shard(list(range(cfg.prompts_per_step)))  # this process's share of the step's prompts
    indices = prompt_indices(step, cfg.prompts_per_step, len(run.train_examples), cfg.seed)
    first = sample(run, [indices[i] for i in slots], seconds, step, [str(i) for i in slots])
    if not cfg.dynamic_sampling:
        return first, first, {}
    informative = lambda g: [i for i in range(len(g.groups)) if g.rewards[i].std() > 0]  # noqa: E731
    batch = first.select(informative(first))
    rounds, generated = 0, len(first.groups) * cfg.group_size
    while len(batch.groups) < len(slots) and rounds < cfg.dynamic_sampling_rounds:
        rounds += 1
        need = len(slots) - len(batch.groups)
        rng = random.Random(f"{cfg.seed}-refill-{step}-{rounds}-{dist.rank}")
        picks = rng.sample(range(len(run.train_examples)), min(2 * need, len(run.train_examples)))
        extra = sample(run, picks, seconds, step, [f"r{rounds}-{dist.rank}-{j}" for j in range(len(picks))])
        generated += len(extra.groups) * cfg.group_size
        batch = batch.extend(extra.select(informative(extra)[:need]))
    if not batch.groups:  # every group was uniform: nothing to learn from this step but the KL term
        batch = first
    return first, batch, {"samples/rounds": rounds, "samples/groups_kept": len(batch.groups),
                          "samples/generated": generated}


def train_step(run: Run, step: int) -> dict[str, float]:
    """One step, top to bottom: rollout -> reward -> advantage -> loss/step -> sync -> log."""
    cfg = run.cfg
    t0 = time.perf_counter()
    # 1-2. rollout and reward (dynamic sampling may sample more than one round)
    seconds = {"generate": 0.0, "verify": 0.0}
    first, data, sampling = rollout(run, step, seconds)
    t1 = time.perf_counter()
    completions = [c for g in data.groups for c in g]
    batch = StepBatch([p for p in data.prompts for _ in range(cfg.group_size)], completions,
                      [not (cfg.overlong == "mask" and c.finish_reason == "length") for c in completions])
    # 3-5. advantages, loss and optimizer steps (GRPO or PPO), then sync the sampler
    update = ppo.update if cfg.algorithm == "ppo" else grpo.update
    stats, advantages = update(run, batch, data.rewards, step)
    t2 = time.perf_counter()
    run.sampler.load_weights(run.bare_policy.named_parameters())  # the next rollout samples from the new policy
    t3 = time.perf_counter()
    run.kl.update(stats.get("kl/ref", 0.0), len(batch) * run.dist.world)
    if run.reference is not None and cfg.ref_refresh_every and (step + 1) % cfg.ref_refresh_every == 0:
        run.reference.load_state_dict(run.bare_policy.state_dict())
    # 6. log (reward metrics describe the first round: the policy's own accuracy, before any filtering)
    local = {
        "rewards": first.rewards.tolist(), "correct": first.judged.correct,
        "terms": first.judged.terms, "errors": first.judged.errors,
        "lengths": [len(c.token_ids) for g in first.groups for c in g],
        "truncated": [c.finish_reason == "length" for g in first.groups for c in g],
        "stats": {**sampling, **stats}, "seconds": seconds, "samples": _sample_records(run, step, data, advantages),
    }
    parts = run.dist.gather(local)
    rewards = torch.tensor([row for p in parts for row in p["rewards"]])
    lengths = [n for p in parts for n in p["lengths"]]
    terms = {name: [r for p in parts for r in p["terms"][name] if r is not None] for name in local["terms"]}
    errors = {name: sum(p["errors"].get(name, 0) for p in parts) for name in local["errors"]}
    metrics = {
        "step": step + 1,
        "reward/mean": rewards.mean().item(), "reward/std": rewards.std().item(),
        **{f"reward/{name}": fmean(rs or [0.0]) for name, rs in terms.items()},
        **{f"reward/{name}_errors": n for name, n in errors.items() if n},
        "accuracy": fmean([c for p in parts for c in p["correct"]]),
        "groups/zero_std_frac": (rewards.std(dim=1) == 0).float().mean().item(),
        # each process's loss is its share of the global loss: add them; average everything else
        **{k: (sum if k.startswith("loss/") else fmean)([p["stats"][k] for p in parts]) for k in local["stats"]},
        "completion/len_mean": fmean(lengths), "completion/len_max": max(lengths),
        "completion/truncated_frac": fmean([t for p in parts for t in p["truncated"]]),
        "time/generate": seconds["generate"], "time/verify": seconds["verify"], "time/learn": t2 - t1,
        "time/weight_sync": t3 - t2, "time/step": t3 - t0,
        "throughput/tokens_per_s": sum(lengths) / (t3 - t0),
    }
    if run.dist.is_main:
        checkpoint.append_jsonl(run.dir / "metrics.jsonl", metrics)
        for p in parts:
            for record in p["samples"]:
                checkpoint.append_jsonl(run.dir / "samples.jsonl", record)
    return metrics


def _sample_records(run: Run, step: int, data: Groups, advantages: torch.Tensor) -> list[dict]:
    g_size = run.cfg.group_size
    records = []
    for g, ex in enumerate(data.examples):
        records.append({
            "step": step + 1, "id": ex.id, "prompt": ex.prompt, "reference": ex.reference,
            "completions": [{
                "text": c.text, "reward": round(data.rewards[g, j].item(), 4),
                "advantage": round(advantages[g * g_size + j].item(), 4), "finish": c.finish_reason,
                "verdicts": {t: (None if v[g * g_size + j] is None else
                                 {"reward": v[g * g_size + j].reward, "reason": v[g * g_size + j].reason})
                             for t, v in data.judged.verdicts.items()},
            } for j, c in enumerate(data.groups[g])]})
    return records


def held_out_accuracy(run: Run, label: str, show: bool) -> dict | None:
    """Greedy accuracy on the held-out examples; with several processes each scores every world-th example."""
    if not run.eval_examples:
        return None
    dist = run.dist
    mine = run.eval_examples[dist.rank::dist.world]
    bar = tqdm(total=len(mine), desc=f"eval ({label})", leave=False, disable=not (show and dist.is_main), unit="problem")
    result = evaluate(run.sampler, run.tokenizer, mine, Rewarder({TASK: 1.0}), run.cfg.max_new_tokens,
                      run.cfg.system_prompt, progress=bar.update)
    bar.close()
    parts = dist.gather(result.records)
    records = [parts[i % dist.world][i // dist.world] for i in range(len(run.eval_examples))]
    accuracy = fmean(r["correct"] for r in records)
    return {"accuracy": accuracy, "n": len(records), "seconds": round(result.seconds, 2), "records": records}


def default_run_dir(cfg: TrainConfig) -> Path:
    name = tasks.parse_spec(cfg.task)[0]
    return Path("runs") / f"{cfg.algorithm}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True) -> dict:
    """Run (or resume) training; returns the summary also written to summary.json."""
    wall = time.perf_counter()
    run_dir = Path(cfg.output) if cfg.output else default_run_dir(cfg)
    state = None
    if resume:
        found = checkpoint.latest(run_dir)
        if found is None:
            raise ConfigError(f"nothing to resume in {run_dir}: no checkpoint under {run_dir / 'checkpoints'}")
        step0, ckpt = found
        if step0 >= cfg.steps:
            raise ConfigError(f"{run_dir} has already trained {step0} steps: pass --steps N with N > {step0} to go on")
        state = {**checkpoint.load_state(ckpt), "model_dir": str(ckpt)}
        if int(os.environ.get("RANK", "0") or 0) == 0:
            for name in ("metrics.jsonl", "samples.jsonl"):
                checkpoint.truncate_jsonl(run_dir / name, step0)
    elif checkpoint.latest(run_dir) is not None:
        raise ConfigError(f"{run_dir} already holds a run: pass --resume to continue it, or another --output")
    cfg = replace(cfg, output=str(run_dir))
    main_process = int(os.environ.get("RANK", "0") or 0) == 0
    if main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_yaml(cfg, run_dir / "config.yaml")

    run = setup(cfg, run_dir, state)
    try:
        history, before, after, start = _loop(run, state, show_progress)
    finally:
        run.sampler.close()
        run.reward_pool.shutdown()
        run.rewarder.close()
    summary = _summary(cfg, history, before, after, time.perf_counter() - wall, start, run.sampler.name)
    summary["processes"] = run.dist.world
    if run.dist.world > 1:  # every process must end with the same weights: a checksum per process shows it
        checksum = float(sum(p.detach().double().sum().item() for p in run.bare_policy.parameters()))
        summary["param_checksums"] = run.dist.gather(checksum)
    if run.dist.is_main:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        for label, result in (("before", before), ("after", after)):
            if result:
                (run_dir / f"eval_{label}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in result["records"]))
    return summary


def _loop(run: Run, state: dict | None, show_progress: bool):
    """Evaluate, train ``steps`` steps with checkpoints, evaluate again."""
    cfg, run_dir = run.cfg, run.dir
    start = state["step"] if state else 0
    main = run.dist.is_main
    before = state.get("eval_before") if state else held_out_accuracy(run, "before", show_progress)
    if before and not state and main:
        checkpoint.append_jsonl(run_dir / "metrics.jsonl", {"step": 0, "eval/accuracy": before["accuracy"]})
    history: list[dict] = []
    bar = tqdm(total=cfg.steps, initial=start, desc=cfg.algorithm, unit="step", disable=not (show_progress and main))
    last_saved = start
    try:
        for step in range(start, cfg.steps):
            m = train_step(run, step)
            history.append(m)
            bar.set_postfix(reward=f"{m['reward/mean']:.3f}", acc=f"{m['accuracy']:.2f}",
                            kl=f"{m.get('kl/ref', 0.0):.4f}", s_step=f"{m['time/step']:.1f}")
            bar.update(1)
            if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
                mid = held_out_accuracy(run, f"step {step + 1}", show_progress)
                if mid and main:
                    checkpoint.append_jsonl(run_dir / "metrics.jsonl", {"step": step + 1, "eval/accuracy": mid["accuracy"]})
            if cfg.save_every and (step + 1) % cfg.save_every == 0:
                save(run, step + 1, before)
                last_saved = step + 1
    finally:
        bar.close()
    if last_saved != cfg.steps:
        save(run, cfg.steps, before)
    after = held_out_accuracy(run, "after", show_progress)
    if after and main:
        checkpoint.append_jsonl(run_dir / "metrics.jsonl", {"step": cfg.steps, "eval/accuracy": after["accuracy"]})
    return history, before, after, start


def _summary(cfg: TrainConfig, history: list[dict], before, after, wall: float, start: int, sampler: str) -> dict:
    def mean(key):
        values = [m[key] for m in history if key in m]
        return round(fmean(values), 4) if values else None

    rewards = [m["reward/mean"] for m in history]
    return {
        "run_dir": cfg.output, "algorithm": cfg.algorithm, "model": cfg.model, "task": cfg.task, "steps": cfg.steps,
        "steps_this_session": len(history), "resumed_from_step": start or None, "wall_seconds": round(wall, 1),
        "accuracy_before": before["accuracy"] if before else None,
        "accuracy_after": after["accuracy"] if after else None,
        "eval_size": after["n"] if after else 0,
        "train_reward_first": rewards[0] if rewards else None,
        "train_reward_last10": round(fmean(rewards[-10:]), 4) if rewards else None,
        "train_reward_std_last10": round(pstdev(rewards[-10:]), 4) if len(rewards) > 1 else None,
        "seconds_per_step": {k.split("/")[1]: mean(k) for k in ("time/generate", "time/verify", "time/learn",
                                                                "time/weight_sync", "time/step")},
        "sampler": sampler,
        "settings": asdict(cfg),
    }
