"""`reasoner train`: GRPO from the terminal."""

from __future__ import annotations

from pathlib import Path

import click

from reasoner.config import (TRAIN_CHOICES, TRAIN_SECTIONS, SectionedCommand, TrainConfig, click_options, from_dict,
                             load_yaml, resolve_settings)

EPILOG = """\b
Examples:
  reasoner train                                  # the default run (GRPO, CPU)
  reasoner train --preset dapo                    # DAPO; also grpo, dr-grpo, ppo
  reasoner train --preset code                    # code: the bundled code task, rewards from the Docker sandbox
  reasoner train --task arithmetic:0.5 --task code:0.5 --max-new-tokens 160   # a mixture of math and code
  reasoner train --preset ppo --critic shared     # PPO with a value head on the policy
  reasoner train --steps 5 --eval-size 50         # a quick look
  reasoner train --model ./my-hf-dir --task gsm8k:data/gsm8k_train.jsonl \\
      --eval-task gsm8k:data/gsm8k_test.jsonl --max-new-tokens 256
  reasoner train --config run.yaml --beta 0       # settings file, one setting overridden
  reasoner train --output runs/a --resume --steps 80   # continue runs/a up to step 80
  reasoner train --max-wall-time 3600             # stop cleanly (with a checkpoint) within an hour

Ctrl-C or SIGTERM finishes the current step, saves a checkpoint and prints the command that
resumes the run (a second Ctrl-C stops at once, keeping the last checkpoint).

Outputs go to the run directory: config.yaml, metrics.jsonl, samples.jsonl, summary.json,
eval_before.jsonl / eval_after.jsonl and checkpoints/step-N (Hugging Face format)."""


@click.command(cls=SectionedCommand, epilog=EPILOG, context_settings={"show_default": False})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML file of settings (keys as below, with _ or -).")
@click.option("--resume", is_flag=True, help="Continue the run in --output from its last checkpoint (its saved settings, overridden by the options given).")
@click.option("--quiet", is_flag=True, help="No progress bars; print only the summary.")
@click.option("--dry-run", is_flag=True, help="Print the resolved settings and what would be loaded, then stop.")
@click_options(TrainConfig, sections=TRAIN_SECTIONS, choices=TRAIN_CHOICES)
def train(config_path, resume, quiet, dry_run, **options):
    """Train a policy with GRPO or PPO on a verifiable task.

    Samples a group of completions per prompt, rewards each with verifiers, and updates the
    policy with a clipped surrogate anchored to a frozen reference model by a KL term. With no
    options it trains SmolLM2-135M-Instruct with GRPO on arithmetic problems on CPU and prints
    held-out accuracy before and after. Settings resolve as: defaults < --preset < --config
    file < options; the resolved settings are written to the run directory.
    """
    import sys

    given = {k: v for k, v in options.items() if v is not None}
    base = None
    if resume:
        out = given.get("output")
        if not out:
            raise click.UsageError("--resume needs --output RUN_DIR (the run to continue)")
        saved = Path(out) / "config.yaml"
        if not saved.is_file():
            raise click.ClickException(f"nothing to resume: {saved} not found")
        base = from_dict(TrainConfig, load_yaml(saved))
    file_values = load_yaml(config_path) if config_path else {}
    cfg = resolve_settings({**file_values, **given}, base=base)  # refused here, before torch is imported
    if dry_run:
        click.echo(dry_run_report(cfg, resume))
        return
    from reasoner.train import train as run_training

    summary = run_training(cfg, resume=resume, show_progress=not quiet, command_line=["reasoner", *sys.argv[1:]])
    click.echo(format_summary(summary))
    if summary.get("status") == "interrupted" and str(summary.get("stopped_by")).startswith("sandbox down"):
        raise SystemExit(1)
    if summary.get("status") == "interrupted" and summary.get("stopped_by") in ("SIGINT", "SIGTERM"):
        raise SystemExit(130 if summary["stopped_by"] == "SIGINT" else 143)


def format_summary(s: dict) -> str:
    done = s.get("resumed_from_step") or 0
    done += s.get("steps_this_session", 0)
    if s.get("status") == "interrupted":
        lines = [f"run: {s['run_dir']}  (stopped by {s['stopped_by']} after step {done} of {s['steps']}, "
                 f"{s['wall_seconds']:.0f} s wall)", f"resume with: {s['resume']}"]
    else:
        lines = [f"run: {s['run_dir']}  ({s['steps']} steps, {s['wall_seconds']:.0f} s wall)"]
    if s["accuracy_before"] is not None and s["accuracy_after"] is not None:
        delta = 100 * (s["accuracy_after"] - s["accuracy_before"])
        lines.append(f"held-out accuracy ({s['eval_size']} problems, greedy): "
                     f"before {100 * s['accuracy_before']:.1f}%  after {100 * s['accuracy_after']:.1f}%  ({delta:+.1f} points)")
    if s["train_reward_first"] is not None:
        lines.append(f"train reward: first step {s['train_reward_first']:.3f}, last 10 steps {s['train_reward_last10']:.3f}")
    t = s["seconds_per_step"]
    if t.get("step"):
        tool = f"tool {t['tool']:.2f}  " if t.get("tool") is not None else ""
        lines.append(f"seconds per step ({s['sampler']} sampler): generate {t['generate']:.2f}  {tool}verify {t['verify']:.2f}  "
                     f"learn {t['learn']:.2f}  weight sync {t['weight_sync']:.2f}  total {t['step']:.2f}")
    return "\n".join(lines)


def dry_run_report(cfg: TrainConfig, resume: bool) -> str:
    """The resolved settings as YAML, then what a run would load (tasks are read; no model is)."""
    import dataclasses

    import yaml

    from reasoner import models, tasks
    from reasoner.train import default_run_dir

    lines = ["# resolved settings (defaults < --preset < --config < options)",
             yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False).rstrip(), "", "# would load"]
    try:
        where = models.resolve(cfg.model, convert=False)
    except models.ModelError as exc:
        raise click.ClickException(str(exc)) from None
    lines.append(f"model: {cfg.model} -> {where}")
    for label, mixture, split in (("train task", cfg.task, "train"), ("eval task", cfg.eval_task or cfg.task, "test")):
        try:
            parts = tasks.mixture(mixture)
        except tasks.TaskError as exc:
            lines.append(f"{label}: {mixture} ({exc})")
            continue
        for _, spec, weight in parts:
            shown = f"{spec}, weight {weight:g}" if len(parts) > 1 and split == "train" else spec
            try:
                n = len(tasks.load(spec, split=split))
                lines.append(f"{label}: {shown} ({n} problems{'' if split == 'train' else ', first ' + str(cfg.eval_size)})")
            except tasks.TaskError as exc:
                lines.append(f"{label}: {shown} ({exc})")
    lines.append(f"rewards: {', '.join(f'{k}={v:g}' for k, v in cfg.rewards.items())}; sampler: {cfg.sampler}")
    out = cfg.output or str(default_run_dir(cfg))
    lines.append(f"run directory: {out}{' (resumed)' if resume else ''}")
    return "\n".join(lines)
