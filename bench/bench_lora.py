"""Full fine-tuning beside LoRA on the default run's config, each `reasoner train` in its own process.

    .venv/bin/python bench/bench_lora.py                      # the default run (30 steps, 200 held out), full vs LoRA
    .venv/bin/python bench/bench_lora.py --steps 10 --eval-size 100 --lora-lr 1e-4

Both runs are `reasoner train` with the defaults (SmolLM2-135M-Instruct, arithmetic, GRPO, vLLM
sampler, seed 0); the LoRA run adds ``--lora-rank R --lora-alpha 2R`` and its own learning rate
(LoRA's usual learning rate is about ten times full fine-tuning's). Reported per run: peak resident
memory of the trainer's process tree (sampled every 0.2 s, all processes summed), median seconds per
step by phase over steps 2.. (generate, verify, learn, weight sync), trainable parameters, held-out
accuracy before and after the same number of steps, and wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("generate", "verify", "learn", "weight_sync", "step")


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(name: str, extra: list[str], steps: int, eval_size: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "reasoner.cli", "train", "--steps", str(steps), "--eval-size", str(eval_size),
           "--save-every", "0", "--output", str(out), "--quiet", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, watched = [0], psutil.Process(proc.pid)

    def watch():
        while proc.poll() is None:
            try:
                peak[0] = max(peak[0], tree_rss(watched))
            except psutil.Error:
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"{name}: reasoner train failed ({proc.returncode})\n{err[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "time/step" in line]
    later = metrics[1:] or metrics
    return {
        "name": name, "peak_rss_gib": peak[0] / 2 ** 30, "wall": time.perf_counter() - t0,
        "phases": {p: statistics.median(m[f"time/{p}"] for m in later) for p in PHASES},
        "before": summary["accuracy_before"], "after": summary["accuracy_after"],
        "trainable": trainable_parameters(out, summary),
    }


def trainable_parameters(out: Path, summary: dict) -> int:
    """Parameters held by the optimizer: the adapter tensors under LoRA, the whole model otherwise."""
    from safetensors import safe_open

    from reasoner import checkpoint

    _, last = checkpoint.latest(out)
    name = "adapter_model.safetensors" if summary["settings"]["lora_rank"] else "model.safetensors"
    with safe_open(str(last / name), "pt") as f:
        return sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--eval-size", type=int, default=200)
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--lora-lr", type=float, default=2e-4)
    ap.add_argument("--only", default="full,lora")
    args = ap.parse_args()
    configs = {
        "full": ("full fine-tuning (lr 2e-5, the default)", []),
        "lora": (f"LoRA r={args.lora_rank} alpha={2 * args.lora_rank} all-linear (lr {args.lora_lr:g})",
                 ["--lora-rank", str(args.lora_rank), "--lora-alpha", str(2 * args.lora_rank),
                  "--learning-rate", str(args.lora_lr)]),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            label, extra = configs[name]
            rows.append((label, run(name, extra, args.steps, args.eval_size, Path(tmp) / name)))
    print(f"reasoner train defaults, {args.steps} steps, {args.eval_size} held-out problems; "
          "median s/step of steps 2..")
    print("| run | trainable params | peak RSS GiB | generate | verify | learn | sync | step | "
          "held-out before → after | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in rows:
        ph = r["phases"]
        print(f"| {label} | {r['trainable'] / 1e6:.2f} M | {r['peak_rss_gib']:.2f} | {ph['generate']:.1f} | "
              f"{ph['verify']:.2f} | {ph['learn']:.1f} | {ph['weight_sync']:.2f} | {ph['step']:.1f} | "
              f"{100 * r['before']:.1f} % → {100 * r['after']:.1f} % | {r['wall']:.0f} |")


if __name__ == "__main__":
    main()
