"""`reasoner report` on real runs of a tiny model, and the TensorBoard / W&B reporters read back."""

import json

import matplotlib.image
import pytest
from click.testing import CliRunner

from reasoner.cli import main
from reasoner.reporting import Reporter, ReportError, check_targets

FAST = ["--sampler", "hf", "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "6",
        "--micro-batch-size", "4", "--learning-rate", "1e-3", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


@pytest.fixture(scope="module")
def two_runs(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = root / "digits.jsonl"
    data.write_text("".join(json.dumps({"id": f"d{i}", "prompt": f"Say {i}.", "answer": str(i)}) + "\n"
                            for i in range(10)))
    runs = []
    for name, lr in (("a", "1e-3"), ("b", "1e-4")):
        out = root / name
        r = invoke("train", "--model", tiny_model, "--task", f"jsonl:{data}", "--eval-task", f"jsonl:{data}", "--steps", 3, "--eval-size", 4,
                   "--output", out, *FAST[:-3], "--learning-rate", lr, "--quiet")
        assert r.exit_code == 0, r.output
        runs.append(out)
    return runs


def test_report_of_one_run_writes_images_and_table(two_runs):
    run = two_runs[0]
    r = invoke("report", run)
    assert r.exit_code == 0, r.output
    out = run / "report"
    for name in ("reward", "accuracy", "kl", "length", "time", "report"):
        image = matplotlib.image.imread(out / f"{name}.png")  # a PNG that opens
        assert image.shape[0] > 100 and image.shape[1] > 100, name
        assert image[..., :3].std() > 0.01, f"{name}.png is blank"
    md = (out / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| a |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    summary = json.loads((run / "summary.json").read_text())
    assert cells[1] == "finished" and cells[2] == "3"
    assert cells[3] == f"{100 * summary['accuracy_before']:.1f}%"
    assert cells[4] == f"{100 * summary['accuracy_after']:.1f}%"
    assert "![all panels](report.png)" in md


def test_report_compares_runs_and_reads_a_run_in_progress(two_runs, tmp_path):
    # a run still going: no summary.json yet, and its last line cut short by a kill
    live = tmp_path / "live"
    live.mkdir()
    lines = (two_runs[1] / "metrics.jsonl").read_text().splitlines()
    steps = [line for line in lines if "eval/accuracy" not in line][:2]
    (live / "metrics.jsonl").write_text("\n".join(steps) + '\n{"step": 3, "reward/me')
    out = tmp_path / "cmp"
    r = invoke("report", two_runs[0], two_runs[1], live, "-o", out)
    assert r.exit_code == 0, r.output
    md = (out / "report.md").read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in md.splitlines() if line.startswith("| ") and not line.startswith("| run")}
    assert set(rows) == {"a", "b", "live"}
    assert rows["live"][1] == "in progress" and rows["live"][2] == "2"
    assert "live: 1 unreadable line(s)" in md
    assert matplotlib.image.imread(out / "report.png").shape[1] > 1000


@pytest.mark.parametrize("setup", ["missing", "empty"])
def test_report_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, setup):
    target = tmp_path / "nothing"
    if setup == "empty":
        target.mkdir()
    r = CliRunner().invoke(main, ["report", str(target)])
    assert r.exit_code != 0
    assert r.output.strip().count("\n") == 0 and "Traceback" not in r.output
    assert "metrics.jsonl" in r.output or "no such run directory" in r.output


def test_unknown_or_missing_report_target_is_refused():
    assert check_targets(["tensorboard", "wandb", "tensorboard"]) == ("tensorboard", "wandb")
    assert check_targets(["none"]) == ()
    with pytest.raises(ReportError, match="choose from tensorboard, wandb"):
        check_targets(["mlflow"])


def test_tensorboard_event_files_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rep = Reporter(("tensorboard",), tmp_path, {"beta": 0.04})
    rep.log({"step": 0, "eval/accuracy": 0.25})
    rep.log({"step": 1, "reward/mean": 0.5, "loss/policy": -0.1, "note": "text is skipped", "nan": float("nan")})
    rep.log({"step": 2, "reward/mean": 0.75})
    rep.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"eval/accuracy", "reward/mean", "loss/policy"}
    assert [(e.step, e.value) for e in acc.Scalars("reward/mean")] == [(1, 0.5), (2, 0.75)]

    # resuming from step 1 drops the events logged past it by the interrupted run
    rep = Reporter(("tensorboard",), tmp_path, {}, resume_step=1)
    rep.log({"step": 2, "reward/mean": 0.9})
    rep.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("reward/mean")] == [(1, 0.5), (2, pytest.approx(0.9))]


def test_wandb_offline_run_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc: offline, no network asked for
    rep = Reporter(("wandb",), tmp_path, {"beta": 0.04, "group_size": 8})
    rep.log({"step": 1, "reward/mean": 0.5})
    rep.log({"step": 2, "reward/mean": 0.75, "accuracy": 0.5})
    rep.close()
    run_id = (tmp_path / "wandb_id").read_text().strip()
    [run_dir] = (tmp_path / "wandb").glob(f"offline-run-*-{run_id}")
    [log] = run_dir.glob("run-*.wandb")  # W&B's binary run log: the history and the config are in it
    data = log.read_bytes()
    for needle in (b"reward/mean", b"0.75", b"accuracy", b"group_size"):
        assert needle in data, needle

    # --resume continues the same W&B run
    again = Reporter(("wandb",), tmp_path, {}, resume_step=2)
    again.log({"step": 3, "reward/mean": 1.0})
    again.close()
    assert (tmp_path / "wandb_id").read_text().strip() == run_id
    assert len(list((tmp_path / "wandb").glob(f"offline-run-*-{run_id}"))) >= 1



def test_training_reports_to_tensorboard_and_wandb(tiny_model, tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {i}.", "answer": str(i)}) + "\n" for i in range(6)))
    out = tmp_path / "run"
    r = invoke("train", "--model", tiny_model, "--task", f"jsonl:{data}", "--eval-task", f"jsonl:{data}",
               "--eval-size", 2, "--steps", 2, "--report-to", "tensorboard,wandb", "--output", out, *FAST)
    assert r.exit_code == 0, r.output
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in logged if "reward/mean" in m]
    assert [(e.step, e.value) for e in acc.Scalars("reward/mean")] == \
        [(m["step"], pytest.approx(m["reward/mean"])) for m in steps]
    assert [e.step for e in acc.Scalars("eval/accuracy")] == [0, 2]
    assert {"loss/policy", "kl/ref", "time/step", "completion/len_mean"} <= set(acc.Tags()["scalars"])
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb"))


def test_unknown_report_target_is_refused_before_loading_anything(tmp_path):
    r = CliRunner().invoke(main, ["train", "--report-to", "mlflow", "--output", str(tmp_path / "x")])
    assert r.exit_code == 1 and "choose from tensorboard, wandb" in r.output
    assert not (tmp_path / "x").exists()


def test_without_a_terminal_one_plain_line_per_step(tiny_model, tmp_path):
    import subprocess
    import sys

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {i}.", "answer": str(i)}) + "\n" for i in range(6)))
    r = subprocess.run([sys.executable, "-m", "reasoner.cli", "train", "--model", str(tiny_model), "--task",
                        f"jsonl:{data}", "--eval-task", f"jsonl:{data}", "--eval-size", "2", "--steps", "3",
                        "--output", str(tmp_path / "run"), *FAST[:-1]], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "\r" not in r.stderr and "it/s" not in r.stderr
