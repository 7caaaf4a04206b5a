"""The code run's tables for docs/benchmarks.md, from the files the commands below write.

    reasoner eval smollm2-135m --task code --limit 50 --samples 8 --temperature 0.7 \\
        --max-new-tokens 192 --output evals/code-t07            # base pass rate per family, sampled
    reasoner eval smollm2-135m --task humaneval --max-new-tokens 384 --output evals/he-base
    reasoner train --preset code --output runs/code
    reasoner eval runs/code --task humaneval --max-new-tokens 384 --output evals/he-code
    python bench/code_report.py runs/code --sampled evals/code-t07 --humaneval evals/he-base evals/he-code

Per family: greedy pass@1 on the held-out problems before and after training (the run's
eval_before.jsonl / eval_after.jsonl), and, with --sampled, the base model's pass@1 at the
training temperature with the share of its 8-sample groups that have mixed rewards (the groups
GRPO learns from).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def family(problem_id: str, families: dict[str, str]) -> str:
    return families.get(problem_id, "?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--sampled", type=Path, help="a `reasoner eval --task code --samples 8` output directory")
    ap.add_argument("--humaneval", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    args = ap.parse_args()

    from reasoner import tasks

    summary = json.loads((args.run / "summary.json").read_text())
    spec = summary["settings"]["eval_task"] or summary["settings"]["task"]
    families = {e.id: e.meta["family"] for e in tasks.load(spec, split="test")}
    before, after = rows(args.run / "eval_before.jsonl"), rows(args.run / "eval_after.jsonl")
    table: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for label, records in (("before", before), ("after", after)):
        for r in records:
            table[family(r["id"], families)][label].append(bool(r["correct"]))
    if args.sampled:
        for r in rows(next(args.sampled.glob("code*.jsonl"))):
            table[family(r["id"], families)]["sampled"].append(r["correct"] / r["samples"])
            table[family(r["id"], families)]["mixed"].append(0 < r["correct"] < r["samples"])

    def pct(values):
        return f"{100 * fmean(values):.1f}" if values else "-"

    print("| family | problems | greedy before | greedy after | base, T=0.7 (8 samples) | mixed groups |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in sorted(table):
        t = table[name]
        print(f"| {name} | {len(t['before'])} | {pct(t['before'])} | {pct(t['after'])} | {pct(t['sampled'])} | "
              f"{pct(t['mixed'])} |")
    everything = {k: [v for t in table.values() for v in t[k]] for k in ("before", "after", "sampled", "mixed")}
    print(f"| **all** | {len(everything['before'])} | **{pct(everything['before'])}** | **{pct(everything['after'])}** | "
          f"{pct(everything['sampled'])} | {pct(everything['mixed'])} |")

    metrics = [m for m in rows(args.run / "metrics.jsonl") if "reward/mean" in m]
    s = summary["seconds_per_step"]
    print()
    print("| | value |\n|---|---:|")
    print(f"| steps x prompts x G | {summary['steps']} x {summary['settings']['prompts_per_step']} x "
          f"{summary['settings']['group_size']} |")
    print(f"| train reward, step 1 -> mean of the last 5 steps | {metrics[0]['reward/mean']:.3f} -> "
          f"{fmean(m['reward/mean'] for m in metrics[-5:]):.3f} |")
    print(f"| groups with mixed rewards, step 1 / mean over the run | "
          f"{1 - metrics[0]['groups/zero_std_frac']:.2f} / {1 - fmean(m['groups/zero_std_frac'] for m in metrics):.2f} |")
    print(f"| seconds per step: generate / verify / learn / weight sync / total | {s['generate']:.2f} / "
          f"{s['verify']:.2f} / {s['learn']:.2f} / {s['weight_sync']:.2f} / {s['step']:.2f} |")
    executions = [m.get("sandbox/executions", 0) for m in metrics]
    print(f"| sandbox executions per step (mean) / executions per second of the code verifier | "
          f"{fmean(executions):.1f} / {summary.get('sandbox_executions_per_s') or 0:.1f} |")
    print(f"| completion length, mean tokens (step 1 -> last 5 steps) | {metrics[0]['completion/len_mean']:.0f} -> "
          f"{fmean(m['completion/len_mean'] for m in metrics[-5:]):.0f} |")
    print(f"| wall time of `reasoner train` (evaluations included) | {summary['wall_seconds']:.0f} s |")
    if args.humaneval:
        he = []
        for d in args.humaneval:
            tasks_ = json.loads((d / "summary.json").read_text())["tasks"]
            he.append(next(iter(tasks_.values())))
        print(f"| HumanEval pass@1 (greedy, 164 problems) before -> after | {100 * he[0]['pass@k']['1']:.1f} % -> "
              f"{100 * he[1]['pass@k']['1']:.1f} % |")


if __name__ == "__main__":
    main()
