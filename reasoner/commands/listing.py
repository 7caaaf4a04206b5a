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
    """Model aliases and the conversion cache."""


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
