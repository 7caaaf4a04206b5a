"""The with/without-tool demo's table and plot, from the two run directories of bench/tool_demo.sh.

Usage: .venv/bin/python bench/tool_demo_report.py OUT_DIR [docs/img/tool_demo.png]
Prints a Markdown table (held-out accuracy before/after, tool use, seconds per step) and draws the
tool-call rate and train reward per step."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(run: Path) -> tuple[dict, list[dict]]:
    summary = json.loads((run / "summary.json").read_text())
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return summary, metrics


def main(out: Path, image: Path) -> None:
    runs = {name: load(out / name) for name in ("tool", "no-tool")}
    rows = ["| | with the python tool | without |", "|---|---:|---:|"]

    def row(label, fn):
        rows.append(f"| {label} | " + " | ".join(fn(*runs[n]) for n in ("tool", "no-tool")) + " |")

    pct = lambda x: "-" if x is None else f"{100 * x:.1f} %"  # noqa: E731
    row("held-out accuracy before", lambda s, m: pct(s["accuracy_before"]))
    row("held-out accuracy after", lambda s, m: pct(s["accuracy_after"]))
    row("gain (points)", lambda s, m: f"{100 * (s['accuracy_after'] - s['accuracy_before']):+.1f}")
    row("held-out replies with a tool call, before -> after",
        lambda s, m: "-" if "eval_tool_used_frac" not in s else
        f"{pct(s['eval_tool_used_frac']['before'])} -> {pct(s['eval_tool_used_frac']['after'])}")
    steps = lambda m: [x for x in m if "reward/mean" in x]  # noqa: E731
    row("train reward, step 1 -> last 3 steps",
        lambda s, m: f"{steps(m)[0]['reward/mean']:.3f} -> {sum(x['reward/mean'] for x in steps(m)[-3:]) / 3:.3f}")
    row("completions with a tool call, step 1 -> last step",
        lambda s, m: "-" if "tool/used_frac" not in steps(m)[0] else
        f"{pct(steps(m)[0]['tool/used_frac'])} -> {pct(steps(m)[-1]['tool/used_frac'])}")
    row("tool calls per completion (mean over steps)",
        lambda s, m: "-" if "tool/calls_per_completion" not in steps(m)[0] else
        f"{sum(x['tool/calls_per_completion'] for x in steps(m)) / len(steps(m)):.2f}")
    row("failed tool calls (all steps)",
        lambda s, m: "-" if "tool/errors" not in steps(m)[0] else f"{sum(x['tool/errors'] for x in steps(m)):.0f}")
    row("model tokens per completion (mean)",
        lambda s, m: f"{sum(x['completion/len_mean'] for x in steps(m)) / len(steps(m)):.1f}")
    for key in ("generate", "tool", "verify", "learn", "weight_sync", "step"):
        row(f"seconds per step: {key.replace('_', ' ')}",
            lambda s, m, key=key: "-" if s["seconds_per_step"].get(key) is None else f"{s['seconds_per_step'][key]:.2f}")
    row("wall time of the run", lambda s, m: f"{s['wall_seconds']:.0f} s")
    print("\n".join(rows))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, (s, m) in runs.items():
        st = steps(m)
        xs = [x["step"] for x in st]
        b.plot(xs, [x["reward/mean"] for x in st], marker="o", label=name)
        if "tool/used_frac" in st[0]:
            a.plot(xs, [x["tool/used_frac"] for x in st], marker="o", label="completions with a call")
            a.plot(xs, [x["tool/calls_per_completion"] for x in st], marker="s", label="calls per completion")
    a.set(title="python tool use per step (GRPO, with the tool)", xlabel="step", ylim=(0, None))
    b.set(title="train reward per step", xlabel="step", ylim=(0, 1))
    a.legend()
    b.legend()
    fig.tight_layout()
    image.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(image, dpi=110)
    print(f"\nplot: {image}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "docs/img/tool_demo.png"))
