"""``reasoner report``: plots and a summary of one or more run directories, from their own files.

A run directory holds ``metrics.jsonl`` (one record per step; held-out evaluations are records with
``eval/accuracy``), ``summary.json`` once the run has ended and ``config.yaml``. The report writes,
into its output folder:

- one PNG per panel (``reward.png``, ``accuracy.png``, ``kl.png``, ``length.png``, ``time.png``),
  every run as one line in each, the held-out evaluations as markers on the accuracy panel;
- ``report.png``, all panels in one figure;
- ``report.md``, a table comparing the runs (steps, held-out accuracy before and after, training
  reward, seconds per step by phase) that links the images.

A run still in progress (no summary.json) is reported from the steps it has logged so far.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean


class ReportInputError(ValueError):
    """A run directory that cannot be reported (missing, or without metrics)."""


@dataclass
class RunRecord:
    name: str
    path: Path
    steps: list[dict] = field(default_factory=list)  # training step records, in step order
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out accuracy)
    summary: dict | None = None
    skipped_lines: int = 0

    def series(self, key: str) -> tuple[list[int], list[float]]:
        pts = [(m["step"], m[key]) for m in self.steps if isinstance(m.get(key), (int, float))]
        return [p[0] for p in pts], [float(p[1]) for p in pts]


def load_run(path: Path) -> RunRecord:
    path = Path(path)
    metrics = path / "metrics.jsonl"
    if not path.is_dir():
        raise ReportInputError(f"{path}: no such run directory")
    if not metrics.is_file():
        raise ReportInputError(f"{path}: no metrics.jsonl (is this a run directory of reasoner train?)")
    run = RunRecord(name=path.name, path=path)
    by_step: dict[int, dict] = {}
    for line in metrics.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            step = int(record["step"])
        except (ValueError, KeyError, TypeError):
            run.skipped_lines += 1  # a line cut short by a kill, say
            continue
        if "eval/accuracy" in record:
            run.evals.append((step, float(record["eval/accuracy"])))
        else:
            by_step[step] = record  # a resumed run rewrote its steps: the last record of a step wins
    run.steps = [by_step[s] for s in sorted(by_step)]
    summary = path / "summary.json"
    if summary.is_file():
        try:
            run.summary = json.loads(summary.read_text())
        except ValueError:
            run.summary = None
    if not run.steps and not run.evals:
        raise ReportInputError(f"{path}: metrics.jsonl holds no step yet")
    return run


# panel file name -> (title, y label, [(metric key, legend suffix)])
PANELS = {
    "reward": ("Training reward", "mean reward", [("reward/mean", "")]),
    "accuracy": ("Accuracy", "fraction correct", [("accuracy", " train")]),
    "kl": ("KL to the reference", "KL estimate", [("kl/ref", "")]),
    "length": ("Completion length", "tokens", [("completion/len_mean", "")]),
    "time": ("Time per step", "seconds", [("time/generate", " generate"), ("time/verify", " verify"),
                                          ("time/learn", " learn"), ("time/weight_sync", " sync")]),
}


def _draw(ax, runs: list[RunRecord], panel: str) -> None:
    title, ylabel, keys = PANELS[panel]
    for i, run in enumerate(runs):
        color = f"C{i}"
        styles = ["-", "--", ":", "-."]
        for k, (key, suffix) in enumerate(keys):
            xs, ys = run.series(key)
            if xs:
                label = run.name + suffix if len(runs) > 1 or suffix else run.name
                ax.plot(xs, ys, styles[k % len(styles)], color=color, label=label, linewidth=1.4)
        if panel == "accuracy" and run.evals:
            ax.plot([s for s, _ in run.evals], [a for _, a in run.evals], "o", color=color, markersize=6,
                    label=f"{run.name} held-out")
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _fmt(value, pct: bool = False) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}%" if pct else f"{value:.3g}"


def _row(run: RunRecord) -> list[str]:
    s = run.summary or {}
    rewards = [m["reward/mean"] for m in run.steps if "reward/mean" in m]
    before = s.get("accuracy_before", run.evals[0][1] if run.evals and run.evals[0][0] == 0 else None)
    after = s.get("accuracy_after")
    if after is None and run.evals and run.evals[-1][0] > 0:
        after = run.evals[-1][1]

    def per_step(key):
        values = [m[key] for m in run.steps if isinstance(m.get(key), (int, float))]
        return fmean(values) if values else None

    status = "finished" if run.summary else "in progress"
    return [run.name, status, str(run.steps[-1]["step"] if run.steps else 0), _fmt(before, True), _fmt(after, True),
            _fmt(rewards[0] if rewards else None), _fmt(fmean(rewards[-10:]) if rewards else None),
            _fmt(per_step("time/step")), _fmt(per_step("time/generate")), _fmt(per_step("time/learn"))]


HEADER = ["run", "status", "steps", "held-out before", "held-out after", "reward first", "reward last 10",
          "s/step", "generate s", "learn s"]


def write_report(run_dirs: list[Path], out: Path) -> list[Path]:
    """Writes the report of ``run_dirs`` into ``out``; returns the files written."""
    runs = [load_run(Path(p)) for p in run_dirs]
    names = [r.name for r in runs]
    for i, run in enumerate(runs):  # two runs called "run" in different folders stay apart
        if names.count(run.name) > 1:
            run.name = f"{run.path.parent.name}/{run.name}"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for panel in PANELS:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        _draw(ax, runs, panel)
        fig.tight_layout()
        fig.savefig(out / f"{panel}.png", dpi=110)
        plt.close(fig)
        written.append(out / f"{panel}.png")
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for ax, panel in zip(axes.flat, PANELS):
        _draw(ax, runs, panel)
    axes.flat[-1].axis("off")
    fig.tight_layout()
    fig.savefig(out / "report.png", dpi=100)
    plt.close(fig)
    written.append(out / "report.png")

    lines = ["# Training report", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in runs]
    lines += [""]
    for run in runs:
        if run.skipped_lines:
            lines.append(f"- {run.name}: {run.skipped_lines} unreadable line(s) of metrics.jsonl skipped")
        s = run.summary or {}
        if s.get("model"):
            lines.append(f"- {run.name}: {s.get('algorithm')} on {s.get('task')}, model {s.get('model')}, "
                         f"sampler {s.get('sampler')}, {s.get('wall_seconds')} s wall")
    lines += ["", "![all panels](report.png)", ""]
    lines += [f"![{PANELS[p][0]}]({p}.png)" for p in PANELS]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    written.append(out / "report.md")
    return written
