"""Run directory layout, checkpoints and resumption.

    RUN/config.yaml            resolved settings of the run
    RUN/metrics.jsonl          one JSON object per step (and per evaluation)
    RUN/samples.jsonl          every prompt of every step with its completions, rewards and verdicts
    RUN/summary.json           before/after accuracy, wall time, mean time split per step
    RUN/checkpoints/step-N/    Hugging Face model + tokenizer, and trainer_state.pt
                               (optimizer, scheduler, RNG states, step)

A checkpoint is written to a temporary directory and renamed into place, so a crash never
leaves a half-written ``step-N``.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch

STATE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and (p / STATE).is_file()]
    return sorted(found)


def latest(run_dir: Path) -> tuple[int, Path] | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir: Path, step: int, model, tokenizer, optimizer, scheduler, extra: dict[str, Any], keep: int) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    state = {"step": step, "scheduler": scheduler.state_dict(), "rng": rng_state(), **extra}
    if optimizer is not None:  # None: saved without optimizer state (--no-save-optimizer)
        state["optimizer"] = optimizer.state_dict()
    torch.save(state, tmp / STATE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for _, old in checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(path: Path) -> dict[str, Any]:
    return torch.load(Path(path) / STATE, map_location="cpu", weights_only=False)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop records logged after ``max_step`` (a run that crashed past its last checkpoint)."""
    path = Path(path)
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= max_step:
                kept.append(line)
        except ValueError:
            continue
    path.write_text("".join(line + "\n" for line in kept))
