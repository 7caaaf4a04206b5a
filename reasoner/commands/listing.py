"""`reasoner verifiers list`, `reasoner tasks list`, `reasoner models list`."""

from __future__ import annotations

import click


def _table(rows: dict[str, str]) -> str:
    width = max((len(k) for k in rows), default=0)
    return "\n".join(f"{name:<{width}}  {doc}" for name, doc in rows.items())


@click.group()
def verifiers():
    """Reward plugins (entry-point group reasoner.verifiers)."""


@verifiers.command("list")
def verifiers_list():
    """List installed verifiers.

    \b
    Example:
      reasoner verifiers list
    """
    from reasoner import verifiers as registry

    click.echo(_table(registry.available()))


@click.group()
def tasks():
    """Task loaders (entry-point group reasoner.tasks)."""


@tasks.command("list")
def tasks_list():
    """List installed task loaders and how to name them in --task.

    \b
    Example:
      reasoner tasks list
    """
    from reasoner import tasks as registry

    click.echo(_table(registry.available()))


@click.group()
def models():
    """Model aliases, the conversion cache, merging LoRA checkpoints."""


@models.command("list")
def models_list():
    """List model aliases and where converted models are cached.

    \b
    Example:
      reasoner models list
    """
    from reasoner.models import ALIASES, cache_dir

    for alias, (package, filename, fix) in ALIASES.items():
        click.echo(f"{alias}  {filename} from the package {package.replace('_', '-')} ({fix})")
    click.echo(f"cache: {cache_dir() / 'models'}")


@models.command("merge")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True,
              help="Dtype of the merged weights.")
def models_merge(checkpoint, out, dtype):
    """Write a LoRA CHECKPOINT (adapter + its base model) as one Hugging Face model in OUT, for serving.

    \b
    Example:
      reasoner models merge runs/a/checkpoints/step-000030 merged/
      vllm serve merged/
    """
    from pathlib import Path

    from reasoner import lora

    if not lora.is_adapter_dir(checkpoint):
        raise click.ClickException(f"{checkpoint} is not a LoRA checkpoint (no adapter_config.json): "
                                   "it is a full model already")
    if Path(out).exists() and any(Path(out).iterdir()):
        raise click.ClickException(f"{out} exists and is not empty: give a new directory")
    lora.merge_checkpoint(checkpoint, out, dtype)
    click.echo(f"{checkpoint} (base {lora.base_of(checkpoint)}) merged into {out}")
