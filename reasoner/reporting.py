"""Where a run's metrics go besides metrics.jsonl: TensorBoard and Weights & Biases (``--report-to``).

Each metrics record (one per step, plus the held-out evaluations) is sent as it is written, keyed
by its ``step``. Both libraries are optional extras (``pip install 'reasoner-rl[tensorboard]'`` or
``[wandb]``); asking for one that is not installed is refused before training starts.

TensorBoard writes event files under ``RUN_DIR/tensorboard``; a resumed run purges the events past
the checkpoint it resumes from, so the curves have no doubled steps. W&B runs under
``RUN_DIR/wandb``; without credentials (no ``WANDB_API_KEY``, no ``wandb login``) it runs offline
(``wandb sync RUN_DIR/wandb/offline-run-*`` uploads it later), and ``WANDB_MODE`` overrides that.
The W&B run id is kept in ``RUN_DIR/wandb_id`` so ``--resume`` continues the same W&B run.
"""

from __future__ import annotations

import importlib.util
import math
import os
import secrets
from pathlib import Path

TARGETS = ("tensorboard", "wandb")
INSTALL = {"tensorboard": "tensorboard", "wandb": "wandb"}


class ReportError(ValueError):
    """A ``--report-to`` target that cannot be used (unknown, or its library missing)."""


def check_targets(targets: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The targets, validated: known names, libraries installed. Cheap: imports nothing."""
    out = []
    for name in targets:
        name = name.strip().lower()
        if not name or name == "none":
            continue
        if name not in TARGETS:
            raise ReportError(f"unknown --report-to target {name!r}: choose from {', '.join(TARGETS)}")
        if importlib.util.find_spec(INSTALL[name]) is None:
            raise ReportError(f"--report-to {name} needs the {INSTALL[name]} package: "
                              f"pip install 'reasoner-rl[{name}]'")
        if name not in out:
            out.append(name)
    return tuple(out)


def _wandb_mode() -> str:
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="replace"):
        return "online"
    return "offline"


class Reporter:
    """Sends metrics records to the chosen targets. ``log`` never raises for a record's content:
    values that are not finite numbers are skipped (TensorBoard and W&B want scalars)."""

    def __init__(self, targets: tuple[str, ...], run_dir: Path, settings: dict, resume_step: int | None = None):
        self.targets = check_targets(targets)
        self.run_dir = Path(run_dir)
        self._tb = None
        self._wandb = None
        if "tensorboard" in self.targets:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"),
                                     purge_step=None if resume_step is None else resume_step + 1)
        if "wandb" in self.targets:
            import wandb

            id_file = self.run_dir / "wandb_id"
            run_id = id_file.read_text().strip() if resume_step is not None and id_file.is_file() else None
            run_id = run_id or secrets.token_hex(4)
            self._wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "reasoner"), name=self.run_dir.name,
                                     id=run_id, resume="allow", dir=str(self.run_dir), config=settings,
                                     mode=_wandb_mode(), settings=wandb.Settings(console="off", silent=True))
            id_file.write_text(run_id + "\n")

    def log(self, record: dict) -> None:
        step = int(record["step"])
        scalars = {k: float(v) for k, v in record.items()
                   if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None and scalars:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            import wandb

            wandb.teardown()  # waits for the W&B service to write the run out (finish alone may not)
            self._wandb = None
