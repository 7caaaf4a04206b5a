"""PPO vs GRPO vs GRPO without a reference model: peak memory, seconds per step, reward curves.

    .venv/bin/python bench/bench_algorithms.py                  # SmolLM2-135M, arithmetic, 12 steps each
    .venv/bin/python bench/bench_algorithms.py --steps 20 --plot docs/img/ppo_vs_grpo.png

Each configuration trains in its own process (`reasoner train`, the default run's batch:
8 prompts x G=8, 32 new tokens), so its peak resident memory (from wait4's rusage) is its own.
The transformers sampler is used for all of them so the memory compared is the learner's
(policy, reference, critic, optimizers), not the vLLM engine's. Prints a table of peak RSS, mean
seconds per step (steps 2..N) and held-out accuracy before/after, then the reward of every step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "grpo": ["--preset", "grpo"],
    "grpo, beta=0": ["--preset", "grpo", "--beta", "0"],
    "ppo": ["--preset", "ppo"],
}


def run(name: str, extra: list[str], steps: int, eval_size: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "reasoner.cli", "train", *extra, "--sampler", "hf", "--steps", str(steps),
           "--eval-size", str(eval_size), "--output", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    output = proc.stdout.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{output}")
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps_m = [m for m in metrics if "reward/mean" in m]
    summary = json.loads((out / "summary.json").read_text())
    return {
        "name": name, "peak_rss_gib": usage.ru_maxrss / 2**20,
        "s_per_step": fmean(m["time/step"] for m in steps_m[1:] or steps_m),
        "learn_s": fmean(m["time/learn"] for m in steps_m[1:] or steps_m),
        "rewards": [m["reward/mean"] for m in steps_m],
        "before": summary["accuracy_before"], "after": summary["accuracy_after"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--eval-size", type=int, default=100)
    ap.add_argument("--only", nargs="*", choices=list(CONFIGS), help="run only these configurations")
    ap.add_argument("--plot", type=Path, help="write the reward curves as a PNG here (needs matplotlib)")
    args = ap.parse_args()
    names = args.only or list(CONFIGS)
    print(f"SmolLM2-135M-Instruct, arithmetic, 8 prompts x G=8, 32 new tokens, {args.steps} steps, "
          f"transformers sampler; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}\n")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results.append(run(name, CONFIGS[name], args.steps, args.eval_size, Path(tmp) / name.replace(", ", "-")))
            print(f"  done: {name}", file=sys.stderr)
    base = next((r for r in results if r["name"] == "ppo"), None)
    print("| configuration | peak RSS (GiB) | vs PPO | s/step | learn s/step | held-out before | after |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        ratio = f"{r['peak_rss_gib'] / base['peak_rss_gib']:.2f}" if base else "-"
        acc = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        print(f"| {r['name']} | {r['peak_rss_gib']:.2f} | {ratio} | {r['s_per_step']:.1f} | {r['learn_s']:.1f} | "
              f"{acc(r['before'])} | {acc(r['after'])} |")
    print("\nmean reward per step:\n")
    print("| step | " + " | ".join(r["name"] for r in results) + " |")
    print("|---:|" + "---:|" * len(results))
    for i in range(args.steps):
        print(f"| {i + 1} | " + " | ".join(f"{r['rewards'][i]:.3f}" for r in results) + " |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for r in results:
            ax.plot(range(1, len(r["rewards"]) + 1), r["rewards"], marker="o", markersize=3, label=r["name"])
        ax.set_xlabel("step")
        ax.set_ylabel("mean reward (training batch)")
        ax.set_title("SmolLM2-135M on arithmetic, 64 completions per step")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
