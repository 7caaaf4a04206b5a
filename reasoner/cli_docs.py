"""docs/cli.md, generated from the commands' own ``--help``: ``python -m reasoner.cli_docs > docs/cli.md``.

A test regenerates it and fails when the file in docs/ differs, so the reference cannot drift."""

from __future__ import annotations

import click

from reasoner.cli import main

HEADER = """# Command-line reference

Generated from `--help` by `python -m reasoner.cli_docs > docs/cli.md`; a test fails when it is stale.
"""


def _walk(ctx: click.Context):
    yield ctx
    cmd = ctx.command
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            yield from _walk(click.Context(cmd.get_command(ctx, name), info_name=name, parent=ctx))


def render() -> str:
    # the settings `reasoner` itself runs with (-h too), at a fixed width
    root = click.Context(main, info_name="reasoner", **{**main.context_settings, "terminal_width": 100})
    parts = [HEADER]
    for ctx in _walk(root):
        parts.append(f"## {ctx.command_path}\n\n```text\n{ctx.command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
