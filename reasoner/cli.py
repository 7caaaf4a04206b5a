"""The ``reasoner`` command line. Commands stay thin: each lives in ``reasoner/commands/`` and
calls into the packages. Commands load lazily so ``reasoner --help`` does not import torch."""

from __future__ import annotations

import importlib
import logging

import click

from reasoner.threads import pin_openmp_threads

pin_openmp_threads()  # before any command imports torch

# command name -> "module:attribute" of a click command or group
COMMANDS = {
    "train": "reasoner.commands.train:train",
    "verify": "reasoner.commands.verify:verify",
    "eval": "reasoner.commands.eval:eval_command",
    "verifiers": "reasoner.commands.listing:verifiers",
    "tasks": "reasoner.commands.listing:tasks",
    "models": "reasoner.commands.listing:models",
    "sandbox": "reasoner.commands.sandbox:sandbox",
    "vllm-serve": "reasoner.commands.serve:vllm_serve",
    "report": "reasoner.commands.report:report",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx, name):
        if name in COMMANDS:
            module, attr = COMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="reasoner-rl")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Train language models to reason with reinforcement learning from verifiable rewards.

    \b
    Start here:
      reasoner train                      # GRPO on SmolLM2-135M, arithmetic task, CPU
      reasoner train --help               # every setting, with its default
      reasoner eval MODEL --task gsm8k    # benchmark scores (pass@k, maj@k)
      reasoner verifiers list             # installed reward plugins
      reasoner verify math -r '\\frac12' -a 0.5   # check one answer against a reference
      reasoner tasks list                 # installed task loaders
      reasoner report runs/NAME           # plots and a summary of a run
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":
    main()
