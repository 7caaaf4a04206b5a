"""The ``reasoner`` command line. Commands stay thin: each lives in ``reasoner/commands/`` and
calls into the packages. Commands load lazily so ``reasoner --help`` does not import torch."""

from __future__ import annotations

import importlib
import logging
import os
import warnings

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


# Quiet by default: what third-party libraries print on every run (Triton and NUMA notices,
# deprecation warnings, save progress bars) is shown only with -v. Environment variables are
# read when torch, vLLM and transformers are imported, which commands do after option parsing.
QUIET_ENV = {"TORCH_CPP_LOG_LEVEL": "ERROR", "VLLM_LOGGING_LEVEL": "ERROR", "TRANSFORMERS_VERBOSITY": "error",
             "HF_HUB_DISABLE_PROGRESS_BARS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
THIRD_PARTY_LOGGERS = ("vllm", "transformers", "torch", "accelerate", "urllib3", "docker", "huggingface_hub",
                       "filelock", "wandb")
_set_by_us: set[str] = set()


def configure_output(verbose: int) -> None:
    """Log levels and warning filters for ``verbose`` (-v count); safe to call again with a new count."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")  # a handler, unless one is there
    logging.getLogger().setLevel(max(logging.WARNING - 10 * verbose, logging.DEBUG))
    warnings.resetwarnings()
    for key, value in QUIET_ENV.items():
        if verbose == 0 and key not in os.environ:
            os.environ[key] = value
            _set_by_us.add(key)
        elif verbose > 0 and key in _set_by_us:
            os.environ.pop(key, None)
            _set_by_us.discard(key)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR if verbose == 0 else logging.NOTSET)
    if verbose == 0:
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", module=r"reasoner(\.|$)")


def _verbose_option(ctx: click.Context, param, value: int) -> None:
    root = ctx.find_root()
    total = root.meta.get("reasoner.verbose", 0) + (value or 0)
    root.meta["reasoner.verbose"] = total
    configure_output(total)


def with_verbose(cmd: click.Command) -> click.Command:
    """Adds -v/--verbose to ``cmd`` (and a group's subcommands), so it is accepted after any command name."""
    if not any(p.name == "verbose" for p in cmd.params):
        cmd.params.append(click.Option(["-v", "--verbose"], count=True, expose_value=False, is_eager=True,
                                       callback=_verbose_option, help="More log output (-vv for debug)."))
    for sub in getattr(cmd, "commands", {}).values():
        with_verbose(sub)
    return cmd


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx, name):
        if name in COMMANDS:
            module, attr = COMMANDS[name].split(":")
            return with_verbose(getattr(importlib.import_module(module), attr))
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="reasoner-rl")
@click.option("-v", "--verbose", count=True, expose_value=False, is_eager=True, callback=_verbose_option,
              help="More log output (-vv for debug); also accepted after a command name.")
def main() -> None:
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


if __name__ == "__main__":
    main()
