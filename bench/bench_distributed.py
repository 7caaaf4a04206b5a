"""Steps per minute of GRPO with 1 learner process vs 2 (accelerate, gloo) on this machine's CPU.

    .venv/bin/python bench/bench_distributed.py               # SmolLM2-135M, the default batch, 4 steps each

Both runs train the same global batch (8 prompts x G=8, 32 new tokens) with the transformers
sampler and per-prompt seeds (identical samples). One process uses every core; two processes
get one thread each (OMP_NUM_THREADS=1). The first step is left out of the means (warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parents[1]


def run(processes: int, steps: int, out: Path) -> dict:
    train = ["-m", "reasoner.cli", "train", "--sampler", "hf", "--device", "cpu", "--seed-per-prompt", "--steps",
             str(steps), "--eval-size", "0", "--output", str(out), "--quiet"]
    env = dict(os.environ)
    if processes == 1:
        cmd = [sys.executable, *train]
    else:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // processes))
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *train]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(proc.stdout[-2000:] + proc.stderr[-2000:])
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "reward/mean" in line]
    warm = metrics[1:] or metrics
    return {"processes": processes, "s_per_step": fmean(m["time/step"] for m in warm),
            "generate": fmean(m["time/generate"] for m in warm), "learn": fmean(m["time/learn"] for m in warm),
            "wall": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; SmolLM2-135M, 8 prompts x G=8, "
          f"32 new tokens, {args.steps} steps\n")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(n, args.steps, Path(tmp) / f"p{n}") for n in (1, 2)]
    print("| processes | s/step | generate | learn | steps/min | wall (s, incl. start-up) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['processes']} | {r['s_per_step']:.1f} | {r['generate']:.1f} | {r['learn']:.1f} | "
              f"{60 / r['s_per_step']:.2f} | {r['wall']:.0f} |")


if __name__ == "__main__":
    main()
