"""Settings: one dataclass per command, a docstring per field, options generated from it.

The field docstrings (the string literal under each field) are read from the source with
``ast`` and become the ``--help`` text, so the help cannot drift from the code. Values are
resolved in this order: dataclass default < ``--config run.yaml`` < command-line option.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import os
import textwrap
import typing
from pathlib import Path
from typing import Any

import click
import yaml


class ConfigError(click.ClickException):
    """A settings file or value that cannot be used."""


SAMPLERS = ("auto", "vllm", "vllm-server", "hf")
# settings with a fixed set of values: checked by validate(), shown as choices in --help
TRAIN_CHOICES = {"algorithm": ("grpo", "ppo"), "kl_estimator": ("k1", "k2", "k3"), "kl_mode": ("loss", "reward"),
                 "loss_agg": ("seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm"),
                 "scale_rewards": ("group", "batch", "none"), "overlong": ("none", "mask", "penalty"),
                 "critic": ("separate", "shared"), "lr_schedule": ("constant", "linear", "cosine"),
                 "old_logprobs": ("learner", "sampler"), "amp": ("none", "bf16"), "dtype": ("float32", "bfloat16", "float16")}


# settings that an option may give several times (and a settings file as a list): the values are
# joined into one string, e.g. --task arithmetic:0.5 --task code:0.5 -> "arithmetic:0.5 + code:0.5"
JOINED = {"task": " + "}


def field_docs(cls: type) -> dict[str, str]:
    """Map each dataclass field to the docstring written under it in the class body."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(underlying type, optional?) for annotations like ``int | None``."""
    args = typing.get_args(tp)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _coerce(name: str, tp: Any, value: Any) -> Any:
    base, optional = _base_type(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"setting {name!r} cannot be empty")
    origin = typing.get_origin(base) or base
    try:
        if origin is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if origin is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if origin is float:
            return float(value)
        if origin is str:
            if isinstance(value, (list, tuple)) and name in JOINED and value:
                return JOINED[name].join(str(v).strip() for v in value)
            return str(value)
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            if typing.get_args(base)[1:] == (dict,):  # verifier_options: NAME -> {KEY: VALUE}
                if not all(isinstance(v, dict) for v in value.values()):
                    raise ValueError(value)
                return {str(k): {str(o): x for o, x in v.items()} for k, v in value.items()}
            return {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r} expects {getattr(base, '__name__', base)}, got {value!r}") from None
    return value


# Old setting names -> new ones: a settings file or a resumed run's config.yaml may still use them.
RENAMED = {"kl_target": "adaptive_kl_target", "kl_horizon": "adaptive_kl_horizon", "target_kl": "early_stop_kl"}


def from_dict(cls: type, values: dict[str, Any], base: Any = None) -> Any:
    """Build ``cls`` from ``values`` (unknown keys are an error) on top of ``base`` or the defaults."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {(RENAMED[k] if k in RENAMED and RENAMED[k] in fields else k): v for k, v in values.items()}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
            hints.append(f"{key} (did you mean {close[0]}?)" if close else key)
        raise ConfigError(f"unknown setting(s): {', '.join(hints)} (see --help for the list)")
    hints = typing.get_type_hints(cls)
    current = dataclasses.asdict(base) if base is not None else {}
    merged = {**current, **{k: _coerce(k, hints[k], v) for k, v in values.items()}}
    obj = cls(**merged)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file {where}: not valid YAML: {what}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting: value")
    return {k.replace("-", "_"): v for k, v in data.items()}


def dump_yaml(obj: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(dataclasses.asdict(obj), sort_keys=False))


def _parse_mapping(ctx, param, values):
    if not values:
        return None
    out = {}
    for item in values:
        key, sep, weight = item.partition("=")
        try:
            out[key.strip()] = float(weight) if sep else 1.0
        except ValueError:
            raise click.BadParameter(f"{item!r} is not NAME or NAME=WEIGHT") from None
    return out


# `reasoner train --help` lists the settings under these headings (a test checks each is listed once)
TRAIN_SECTIONS = {
    "Model": ("model", "dtype", "device", "threads", "gradient_checkpointing"),
    "Data": ("task", "eval_task", "eval_size", "eval_every", "system_prompt", "max_prompt_tokens", "seed",
             "seed_per_prompt"),
    "Sampling": ("sampler", "sampler_fallback", "prompts_per_step", "group_size", "max_new_tokens", "temperature",
                 "top_p", "rollout_chunks", "dynamic_sampling", "dynamic_sampling_rounds", "vllm_server_url",
                 "vllm_kv_cache_gib", "vllm_gpu_memory_utilization", "vllm_sleep"),
    "Rewards": ("rewards", "verifier_options", "scale_rewards", "overlong", "overlong_buffer"),
    "Algorithm": ("algorithm", "preset", "clip_low", "clip_high", "dual_clip", "loss_agg", "num_iterations",
                  "minibatches", "early_stop_kl", "entropy_coef", "old_logprobs", "tis_cap", "critic",
                  "critic_learning_rate", "vf_coef", "value_clip", "gamma", "lam", "whiten_advantages"),
    "KL to the reference": ("beta", "kl_estimator", "kl_mode", "adaptive_kl_target", "adaptive_kl_horizon",
                            "ref_refresh_every"),
    "Tools": ("tools", "tool_options", "max_tool_calls", "tool_output_tokens"),
    "LoRA": ("lora_rank", "lora_alpha", "lora_targets", "lora_dropout"),
    "Optimisation": ("learning_rate", "lr_schedule", "warmup_steps", "weight_decay", "max_grad_norm",
                     "micro_batch_size", "shared_prefix", "amp"),
    "Run and checkpoints": ("output", "steps", "max_wall_time", "save_every", "keep_checkpoints", "save_optimizer"),
    "Logging": ("report_to",),
}


def check_tools(spec: str | None, max_tool_calls: int, tool_output_tokens: int) -> None:
    """The tool settings of train and eval: known tool names, sane limits."""
    if max_tool_calls < 0 or tool_output_tokens < 1:
        raise ConfigError(f"max_tool_calls must be >= 0 and tool_output_tokens >= 1 (got {max_tool_calls}, "
                          f"{tool_output_tokens})")
    from reasoner import plugins

    known = plugins.find("reasoner.tools")
    for name in [n.strip() for n in (spec or "").split(",") if n.strip()]:
        if name not in known:
            raise ConfigError(f"unknown tool {name!r} (known: {', '.join(sorted(known))})"
                              f"{plugins.unknown_hint('reasoner.tools', name)}")


class SectionedCommand(click.Command):
    """A command whose --help lists options under headings: ``param.section`` (unset: "Options")."""

    def format_options(self, ctx, formatter):
        sections: dict[str, list] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(getattr(param, "section", None) or "Options", []).append(record)
        for title, rows in sections.items():
            with formatter.section(title):
                formatter.write_dl(rows)


def _parse_options(ctx, param, values):
    """NAME.KEY=VALUE items -> {NAME: {KEY: VALUE}}; numbers and true/false are read as such."""
    if not values:
        return None
    out: dict[str, dict] = {}
    for item in values:
        key, sep, value = item.partition("=")
        name, dot, option = key.strip().partition(".")
        if not sep or not dot or not name or not option.isidentifier():
            raise click.BadParameter(f"{item!r} is not NAME.KEY=VALUE (e.g. math.timeout=5)")
        out.setdefault(name, {})[option] = scalar(value)
    return out


def _join_values(ctx, param, values):
    return JOINED[param.name].join(v.strip() for v in values) if values else None


def scalar(value: str) -> Any:
    """A command-line option value: numbers and true/false are read as such, anything else (a regex,
    "A: 1") stays the text given."""
    try:
        parsed = yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        return value
    return parsed if isinstance(parsed, (bool, int, float)) else value


def click_options(cls: type, skip: tuple[str, ...] = (), sections: dict[str, tuple[str, ...]] | None = None,
                  choices: dict[str, tuple[str, ...]] | None = None):
    """Decorator adding one ``--option`` per dataclass field; unset options arrive as None. Options are
    ordered and headed by ``sections`` (with a `SectionedCommand`); ``choices`` show as [a|b|c]."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    section_of = {name: title for title, names in (sections or {}).items() for name in names}
    choices = choices or {}
    order = [n for names in (sections or {}).values() for n in names]
    fields = sorted(dataclasses.fields(cls), key=lambda f: order.index(f.name) if f.name in order else len(order))

    def decorate(func):
        for f in reversed(fields):
            if f.name in skip:
                continue
            base, _ = _base_type(hints[f.name])
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            flag = "--" + f.name.replace("_", "-")
            help_text = docs.get(f.name, "")
            if f.name in JOINED and base is str:
                opt = click.option(flag, f.name, multiple=True, callback=_join_values, metavar="SPEC",
                                   help=f"{help_text} Repeatable. [default: {default}]")
            elif (typing.get_origin(base) or base) is dict and typing.get_args(base)[1:] == (dict,):
                opt = click.option(flag.rstrip("s"), f.name, multiple=True, callback=_parse_options,
                                   metavar="NAME.KEY=VALUE", help=f"{help_text} Repeatable.")
            elif (typing.get_origin(base) or base) is dict:
                shown = ", ".join(f"{k}={v:g}" for k, v in default.items())
                opt = click.option(flag, f.name, multiple=True, callback=_parse_mapping, metavar="NAME=W",
                                   help=f"{help_text} Repeatable. [default: {shown}]")
            elif base is bool:
                opt = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name, default=None,
                                   help=f"{help_text} [default: {'on' if default else 'off'}]")
            else:
                ptype = click.Choice(choices[f.name]) if f.name in choices else {int: int, float: float}.get(base, str)
                shown = "" if default is None else f" [default: {default}]"
                opt = click.option(flag, f.name, type=ptype, default=None, help=f"{help_text}{shown}")
            func = opt(func)
            func.__click_params__[-1].section = section_of.get(f.name)
        return func

    return decorate


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Settings of ``reasoner train``; frozen: what a run resolved is what it runs (``dataclasses.replace`` makes a changed copy)."""

    model: str = "smollm2-135m"
    """Policy to train: a local Hugging Face directory, a .gguf file, a Hub model id, or the alias smollm2-135m."""
    task: str = "arithmetic"
    """Training task spec: NAME or NAME:ARG (see `reasoner tasks list`), e.g. gsm8k:data/gsm8k_train.jsonl. Given several times (a list in a settings file): a mixture, each task with an optional weight after a last colon (arithmetic:0.5, code:levels=1:2), sampled in proportion and judged by its own verifier."""
    eval_task: str | None = None
    """Held-out task spec for the before/after evaluation; empty means the test split of --task."""
    output: str | None = None
    """Run directory; empty means runs/<algorithm>-<task>-<timestamp>."""
    steps: int = 30
    """Training steps; each step samples prompts_per_step x group_size completions and updates the policy."""
    prompts_per_step: int = 8
    """Distinct prompts per step."""
    group_size: int = 8
    """Completions sampled per prompt (G); GRPO compares each completion with the others of its group."""
    max_new_tokens: int = 32
    """Maximum tokens generated per completion."""
    max_prompt_tokens: int = 512
    """Prompts longer than this (in tokens, after the chat template) are skipped with a warning."""
    temperature: float = 0.7
    """Sampling temperature during training; the learner scores tokens with the same temperature."""
    top_p: float = 1.0
    """Nucleus sampling threshold during training (1.0 samples from the full distribution)."""
    learning_rate: float = 2e-5
    """AdamW learning rate."""
    warmup_steps: int = 0
    """Steps of linear learning-rate warm-up from zero."""
    lr_schedule: str = "constant"
    """Learning rate after the warm-up: constant, or linear or cosine decay to zero at the last step."""
    lora_rank: int = 0
    """LoRA: rank of the adapters trained instead of the full weights (0: off, train every weight)."""
    lora_alpha: float = 32.0
    """LoRA: scale of the adapters' update, alpha / rank times B A."""
    lora_targets: str = "all-linear"
    """LoRA: comma-separated module names that get adapters (e.g. q_proj,v_proj), or all-linear."""
    lora_dropout: float = 0.0
    """LoRA: dropout on the adapters' input in the learner's gradient passes (scoring passes see none)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of keeping them: less memory, about a third more learning time."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    algorithm: str = "grpo"
    """grpo (group-relative advantages, no critic) or ppo (learned critic, GAE)."""
    preset: str | None = None
    """A named recipe applied under your settings: grpo (DeepSeekMath), dapo, dr-grpo, ppo (see docs/algorithms.md), or code (GRPO on the bundled code task with the sandbox as the reward, docs/training.md)."""
    beta: float = 0.04
    """KL coefficient to the frozen reference model; 0 loads no reference model."""
    kl_estimator: str = "k3"
    """Per-token KL estimator: k1 (log-ratio), k2 (squared log-ratio / 2) or k3 (exp(d) - d - 1)."""
    kl_mode: str = "loss"
    """Where the KL goes: loss (a term of the loss, GRPO) or reward (a per-token penalty in the reward, classic PPO)."""
    adaptive_kl_target: float = 0.0
    """Adaptive KL control (Ziegler et al. 2019): the KL to the reference that beta is steered toward after every step (0: beta stays fixed)."""
    adaptive_kl_horizon: int = 10000
    """Adaptive KL control: sequences over which beta may change by up to 20%."""
    ref_refresh_every: int = 0
    """Copy the policy into the reference model every N steps (0: the reference stays the initial policy)."""
    clip_low: float = 0.2
    """Lower clip range: the ratio to the sampling policy is clipped below at 1 - clip_low."""
    clip_high: float = 0.2
    """Upper clip range: clipped above at 1 + clip_high (DAPO's clip-higher raises it, e.g. 0.28)."""
    dual_clip: float = 0.0
    """Dual clip: cap the loss of negative-advantage tokens at -A * dual_clip (0: off; a typical value is 3)."""
    loss_agg: str = "seq-mean-token-mean"
    """Token aggregation: seq-mean-token-mean (GRPO), token-mean (DAPO) or seq-mean-token-sum-norm (Dr. GRPO)."""
    num_iterations: int = 1
    """Passes over each sampled batch (GRPO's mu, PPO's epochs); > 1 reuses samples off-policy."""
    minibatches: int = 1
    """Optimizer steps per pass: the batch is split into this many minibatches."""
    early_stop_kl: float = 0.0
    """Early stopping: skip a step's remaining passes once a minibatch's approximate KL(old policy || new policy) exceeds this (0: never)."""
    scale_rewards: str = "group"
    """GRPO advantage scale: group (divide by the group's reward std), batch (the batch's std) or none (Dr. GRPO)."""
    dynamic_sampling: bool = False
    """DAPO dynamic sampling: drop groups whose rewards are all equal and sample more prompts to refill the batch."""
    dynamic_sampling_rounds: int = 3
    """Dynamic sampling: extra sampling rounds at most per step; then the step trains on the groups it has."""
    overlong: str = "none"
    """Completions cut at max_new_tokens: none, mask (left out of the loss) or penalty (DAPO's soft length penalty)."""
    overlong_buffer: int = 8
    """Overlong penalty: the last N tokens of the budget, over which the penalty grows linearly from 0 to 1."""
    entropy_coef: float = 0.0
    """Entropy bonus: subtract this times the token-mean entropy from the loss."""
    critic: str = "separate"
    """PPO critic: separate (its own model, initialised from the policy) or shared (a value head on the policy)."""
    critic_learning_rate: float = 1e-5
    """PPO: AdamW learning rate of a separate critic (a shared value head uses learning_rate)."""
    vf_coef: float = 0.5
    """PPO: weight of the value loss (with a shared critic, relative to the policy loss)."""
    value_clip: float = 0.2
    """PPO: the new value may move at most this far from the old one in the value loss (0: no clip)."""
    gamma: float = 1.0
    """PPO: discount factor of GAE."""
    lam: float = 0.95
    """PPO: GAE lambda (1: Monte-Carlo returns, 0: one-step TD)."""
    whiten_advantages: bool = True
    """PPO: normalise advantages to zero mean and unit variance over the batch's tokens."""
    micro_batch_size: int = 8
    """Sequences per forward/backward pass; gradients accumulate over the whole batch."""
    amp: str = "none"
    """Mixed precision of the learner's passes: none (dtype as loaded) or bf16 (autocast: bf16 matmuls, on CPU through AMX where the CPU has it; fp32 weights and optimizer)."""
    shared_prefix: bool = True
    """Learner passes compute each prompt once per micro-batch, its completions attending to it (same log-probs and gradients, fewer tokens); off: one padded row per sequence, which can be faster for completions much longer than the prompt."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this value (0 disables clipping)."""
    rollout_chunks: int = 1
    """Split each rollout into N chunks: the verifiers judge one chunk while the sampler generates the next."""
    verifier_options: dict[str, dict] = dataclasses.field(default_factory=dict)
    """Options of the verifiers as NAME.KEY=VALUE, e.g. math.strategies=boxed,last_number or code.timeout=5."""
    tools: str | None = None
    """Tools the model may call while it writes, comma-separated: python (a fenced python code block, run in the Docker sandbox; docs/training.md)."""
    tool_options: dict[str, dict] = dataclasses.field(default_factory=dict)
    """Options of the tools as NAME.KEY=VALUE, e.g. python.timeout=5 or python.workers=4."""
    max_tool_calls: int = 4
    """Tool calls per completion at most; later calls are not run."""
    tool_output_tokens: int = 256
    """Tokens of a tool's output kept in the trajectory (the rest is cut, with a note saying so)."""
    rewards: dict[str, float] = dataclasses.field(default_factory=lambda: {"task": 1.0})
    """Reward terms as NAME=WEIGHT: 'task' is each example's own verifier, other names are verifier plugins."""
    sampler: str = "auto"
    """Rollout engine: vllm (in this process), vllm-server (a separate vLLM server on this machine), hf (transformers generate), or auto (vllm when installed, else hf)."""
    sampler_fallback: bool = False
    """If the vLLM engine fails to start, warn and sample with transformers instead of stopping."""
    old_logprobs: str = "learner"
    """Denominator of the PPO ratio: learner (the learner re-scores the samples: exact) or sampler (the sampler's log-probs)."""
    tis_cap: float = 0.0
    """Truncated importance sampling: weight each token's surrogate by min(pi_learner/pi_sampler, cap); 0 turns it off."""
    vllm_server_url: str | None = None
    """vllm-server: use the server already running at this URL (started by `reasoner vllm-serve`) instead of starting one."""
    vllm_kv_cache_gib: int = 2
    """vLLM on CPU: GiB of memory for the KV cache."""
    vllm_gpu_memory_utilization: float = 0.4
    """vLLM on GPU: fraction of GPU memory the engine may take (the learner needs the rest)."""
    vllm_sleep: bool = True
    """vLLM on GPU: free the engine's memory while the learner runs (sleep/wake each step)."""
    system_prompt: str | None = None
    """System message for chat models; empty keeps the chat template's own default."""
    eval_size: int = 200
    """Held-out problems evaluated (greedy) before and after training; 0 skips the evaluation."""
    eval_every: int = 0
    """Also evaluate held-out accuracy every N steps (0: only before and after)."""
    save_every: int = 10
    """Save a checkpoint every N steps (0: only at the end); the last one, and one on SIGINT/SIGTERM or --max-wall-time, are always saved."""
    save_optimizer: bool = True
    """Keep the optimizer state in checkpoints (about twice the weights' size); without it --resume starts a fresh optimizer."""
    max_wall_time: float = 0.0
    """Stop cleanly, with a checkpoint, before the run would pass this many seconds (0: no limit)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk; older ones are deleted."""
    report_to: str = ""
    """Also send metrics to tensorboard, wandb or both (comma-separated); metrics.jsonl is always written."""
    seed: int = 0
    """Seed for prompt order, sampling and initialisation: same seed, same run."""
    seed_per_prompt: bool = False
    """Seed each group's sampling from (seed, step, prompt): the same samples whatever the number of processes."""
    dtype: str = "float32"
    """Parameter dtype: float32 (CPU default), bfloat16 or float16 (GPU)."""
    device: str = "auto"
    """Device: auto (cuda if available, else cpu), cpu or cuda[:N]."""
    threads: int = 0
    """CPU threads for torch (0: torch's default, one per core)."""

    def validate(self) -> None:
        positive = ("steps", "prompts_per_step", "group_size", "max_new_tokens", "max_prompt_tokens",
                    "micro_batch_size", "num_iterations", "keep_checkpoints", "rollout_chunks", "minibatches")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("warmup_steps", "eval_size", "eval_every", "save_every", "threads", "max_wall_time"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.group_size < 2 and self.algorithm == "grpo":
            raise ConfigError("group_size must be at least 2: GRPO compares completions within a group")
        for name, allowed in TRAIN_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)} (got {getattr(self, name)!r})")
        if self.report_to:
            from reasoner.reporting import ReportError, check_targets

            try:
                check_targets(self.report_to.split(","))
            except ReportError as exc:
                raise ConfigError(str(exc)) from None
        from reasoner import tasks

        for name in ("task", "eval_task"):
            try:
                tasks.mixture(getattr(self, name) or "-")
            except tasks.TaskError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r} (known: {', '.join(PRESETS)})")
        if not 0 < self.clip_low < 1 or self.clip_high <= 0:
            raise ConfigError("need 0 < clip_low < 1 and clip_high > 0")
        if self.dual_clip and self.dual_clip <= 1:
            raise ConfigError(f"dual_clip must be > 1, or 0 to turn it off (got {self.dual_clip})")
        if self.minibatches > self.prompts_per_step * self.group_size:
            raise ConfigError("minibatches cannot exceed the number of sequences per step")
        if self.lora_rank < 0 or self.lora_alpha <= 0:
            raise ConfigError(f"lora_rank must be >= 0 and lora_alpha > 0 (got {self.lora_rank}, {self.lora_alpha})")
        if self.lora_rank:
            import importlib.util

            if importlib.util.find_spec("peft") is None:
                raise ConfigError("--lora-rank needs the peft package: pip install 'reasoner-rl[lora]'")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout must be in [0, 1) (got {self.lora_dropout})")
        if self.lora_rank and not self.lora_targets.strip(" ,"):
            raise ConfigError("lora_targets is empty: give module names (e.g. q_proj,v_proj) or all-linear")
        if self.lora_rank and self.ref_refresh_every:
            raise ConfigError("ref_refresh_every with LoRA: the reference is the base model with the adapters off; "
                              "leave ref_refresh_every at 0")
        for name in ("adaptive_kl_target", "early_stop_kl", "entropy_coef", "value_clip", "ref_refresh_every",
                     "dynamic_sampling_rounds", "overlong_buffer"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0 (got {getattr(self, name)})")
        if self.critic == "shared" and self.algorithm == "ppo" and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
            raise ConfigError("critic=shared is not supported with several processes; use critic=separate")
        if self.overlong == "penalty" and not 0 < self.overlong_buffer < self.max_new_tokens:
            raise ConfigError("overlong penalty needs 0 < overlong_buffer < max_new_tokens")
        check_tools(self.tools, self.max_tool_calls, self.tool_output_tokens)
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ConfigError("gamma and lam must be in [0, 1]")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0 for training (got {self.temperature})")
        if self.beta < 0 or self.learning_rate <= 0 or self.critic_learning_rate <= 0:
            raise ConfigError("beta must be >= 0, learning rates > 0")
        if not self.rewards:
            raise ConfigError("at least one reward term is needed (e.g. --rewards task=1)")
        if "task" not in self.rewards:  # --rewards format=0.2 alone would train on the format only
            terms = ",".join(f"{k}={v:g}" for k, v in self.rewards.items())
            raise ConfigError(f"rewards {terms} leave out 'task' (the examples' own verifier): add --rewards task=1, "
                              f"or --rewards task=0 to train on the other terms alone")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r} (known: {', '.join(SAMPLERS)})")
        if self.vllm_server_url and self.sampler != "vllm-server":
            raise ConfigError("--vllm-server-url is for --sampler vllm-server")
        if self.tis_cap < 0:
            raise ConfigError(f"tis_cap must be >= 0 (got {self.tis_cap})")


# Named recipes: values applied on top of the defaults and under a config file and options.
PRESETS: dict[str, dict[str, Any]] = {
    # DeepSeekMath (Shao et al. 2024): group std scaling, symmetric clip, k3 KL in the loss.
    "grpo": {"algorithm": "grpo", "loss_agg": "seq-mean-token-mean", "scale_rewards": "group", "clip_low": 0.2,
             "clip_high": 0.2, "beta": 0.04, "kl_estimator": "k3", "kl_mode": "loss"},
    # DAPO (Yu et al. 2025): clip-higher, token-level loss, dynamic sampling, overlong shaping, no KL.
    "dapo": {"algorithm": "grpo", "loss_agg": "token-mean", "scale_rewards": "group", "clip_low": 0.2,
             "clip_high": 0.28, "beta": 0.0, "dynamic_sampling": True, "overlong": "penalty"},
    # Dr. GRPO (Liu et al. 2025): no std scaling, no per-sequence length normalisation, no KL.
    "dr-grpo": {"algorithm": "grpo", "loss_agg": "seq-mean-token-sum-norm", "scale_rewards": "none", "beta": 0.0},
    # The code run (docs/training.md, "Training on code"): GRPO on the bundled code task, the
    # Docker sandbox as the reward; sized to finish in about 20 minutes on a 2-core CPU (no
    # reference model: beta 0 saves its forward pass, a quarter of the learner's time).
    "code": {"algorithm": "grpo", "task": "code", "max_new_tokens": 128, "prompts_per_step": 4, "group_size": 8,
             "steps": 28, "learning_rate": 3e-5, "beta": 0.0, "eval_size": 100},
    # PPO for language models (Ouyang et al. 2022): critic, GAE, per-token k1 KL penalty in the reward.
    "ppo": {"algorithm": "ppo", "loss_agg": "token-mean", "beta": 0.05, "kl_mode": "reward", "kl_estimator": "k1",
            "gamma": 1.0, "lam": 0.95, "whiten_advantages": True, "critic": "separate", "vf_coef": 0.5,
            "value_clip": 0.2, "clip_low": 0.2, "clip_high": 0.2},
}


def resolve_settings(values: dict[str, Any], base: Any = None) -> TrainConfig:
    """Defaults (or ``base``, a resumed run's saved settings, which already hold its preset)
    < the preset named in ``values`` < ``values``."""
    preset = values.get("preset")
    layered = {**PRESETS[preset], **values} if preset in PRESETS else dict(values)
    return from_dict(TrainConfig, layered, base=base)
