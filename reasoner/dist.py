"""Several learner processes through accelerate: one object the training code asks about ranks,
gradient synchronisation and collectives. In a single process every call is a no-op.

    accelerate launch --multi_gpu --num_processes 8 -m reasoner.cli train ...   # 8 GPUs (DDP)
    accelerate launch --config_file fsdp.yaml -m reasoner.cli train ...          # FSDP / DeepSpeed
    accelerate launch --multi_gpu --num_processes 2 -m reasoner.cli train --device cpu ...  # 2 CPU processes (gloo)

Each process samples its share of the step's prompts (whole groups, so group statistics stay
right), computes its loss with the *global* normalisers (sequence and token counts summed over
processes, times the number of processes because DDP averages gradients), and synchronises
gradients once per optimizer step (``no_sync`` on the other micro-batches). Only the main
process writes metrics, samples, checkpoints and the summary.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


class Dist:
    def __init__(self, device: torch.device):
        self.world = launched_world_size()
        self.acc = None
        self.rank = 0
        self.device = device
        if self.world > 1:
            from accelerate import Accelerator

            self.acc = Accelerator(cpu=device.type == "cpu")
            self.rank = self.acc.process_index
            self.device = self.acc.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        if self.acc is None:
            return model, optimizer
        return self.acc.prepare(model, optimizer)

    def unwrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model if self.acc is None else self.acc.unwrap_model(model)

    def no_sync(self, model: torch.nn.Module, skip: bool):
        """Within this context backward() accumulates without synchronising gradients, if ``skip``."""
        if self.acc is None or not skip:
            return contextlib.nullcontext()
        return self.acc.no_sync(model)

    def shard(self, items: list) -> list:
        """This process's contiguous share of ``items`` (the caller checks divisibility)."""
        n = len(items) // self.world
        return items[self.rank * n:(self.rank + 1) * n]

    def sum(self, value: float) -> float:
        if self.acc is None:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.item()

    def min(self, value: float) -> float:
        if self.acc is None:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return t.item()

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order (on every process)."""
        if self.acc is None:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.acc is not None:
            self.acc.wait_for_everyone()
