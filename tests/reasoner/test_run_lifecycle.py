"""A run loses nothing: SIGINT/SIGTERM and --max-wall-time stop with a checkpoint and the resume
command; a run directory is only continued by --resume; a run that fails to start writes nothing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from click.testing import CliRunner

from reasoner.cli import main

TINY = ["--sampler", "hf", "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4",
        "--micro-batch-size", "4", "--eval-size", "0"]


def invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def steps_logged(run_dir):
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if "reward/mean" in line]


def ckpt_steps(run_dir):
    return sorted(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("step-*"))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_step_saves_and_prints_the_resume_command(tiny_model, digit_task, tmp_path, sig, code):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "reasoner.cli", "train", "--model", str(tiny_model), "--task",
                             digit_task, "--steps", "100000", "--save-every", "0", "--output", str(out), *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not steps_logged(out) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert steps_logged(out), "the run logged no step"
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr[-2000:]
    done = steps_logged(out)
    assert done == list(range(1, len(done) + 1))
    assert ckpt_steps(out) == [done[-1]]  # --save-every 0, yet the interruption saved the last finished step
    resume = f"reasoner train --output {out} --resume"
    assert f"resume with: {resume}" in stdout and sig.name in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stopped_by"] == sig.name
    assert summary["resume"] == resume and summary["command_line"][:2] == ["reasoner", "train"]
    assert summary["versions"]["torch"] == torch.__version__ and "reasoner-rl" in summary["versions"]

    # the printed command goes on from there
    r = invoke("train", "--output", out, "--resume", "--steps", done[-1] + 1, "--quiet")
    assert r.exit_code == 0, r.output
    assert steps_logged(out) == list(range(1, done[-1] + 2))
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_max_wall_time_stops_cleanly_with_a_checkpoint(tiny_model, digit_task, tmp_path):
    out = tmp_path / "run"
    t0 = time.perf_counter()
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 100000, "--max-wall-time", 3,
               "--save-every", 0, "--output", out, *TINY, "--quiet")
    assert r.exit_code == 0, r.output
    assert time.perf_counter() - t0 < 30
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stopped_by"] == "max_wall_time"
    assert summary["wall_seconds"] <= 3.5
    done = steps_logged(out)
    assert len(done) >= 1 and ckpt_steps(out) == [done[-1]]
    assert "resume with: reasoner train --output" in r.output


def test_checkpoints_every_ten_steps_by_default(tiny_model, digit_task, tmp_path):
    out = tmp_path / "run"
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 21, "--keep-checkpoints", 5,
               "--output", out, *TINY, "--quiet")
    assert r.exit_code == 0, r.output
    assert ckpt_steps(out) == [10, 20, 21]


@pytest.mark.parametrize("held", ["metrics.jsonl", "summary.json", "config.yaml"])
def test_a_new_run_never_appends_to_a_run_directory(tiny_model, digit_task, tmp_path, held):
    out = tmp_path / "run"
    out.mkdir()
    (out / held).write_text('{"step": 1, "reward/mean": 0.5}\n')
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 1, "--output", out, *TINY)
    assert r.exit_code == 1 and "already holds" in r.output and "--resume" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == [held]


def test_a_failed_resume_changes_nothing(tiny_model, digit_task, tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 1, "--output", out, *TINY,
                  "--quiet").exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    r = invoke("train", "--output", out, "--resume", "--steps", 2, "--task", "jsonl:/no/such/file.jsonl")
    assert r.exit_code == 1 and "data file not found" in r.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert invoke("train", "--output", out, "--resume", "--steps", 2, "--quiet").exit_code == 0
    assert steps_logged(out) == [1, 2]


def test_a_run_that_fails_to_start_leaves_no_directory(tmp_path, digit_task):
    out = tmp_path / "run"
    r = invoke("train", "--model", tmp_path / "no-model", "--task", digit_task, "--output", out, *TINY)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert not out.exists()


def test_checkpoints_without_optimizer_state(tiny_model, digit_task, tmp_path, caplog):
    out = {}
    for flag in ("--save-optimizer", "--no-save-optimizer"):
        out[flag] = tmp_path / flag.strip("-")
        assert invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 1, "--output", out[flag],
                      flag, *TINY, "--quiet").exit_code == 0
    with_opt = torch.load(out["--save-optimizer"] / "checkpoints/step-000001/trainer_state.pt", weights_only=False)
    without = torch.load(out["--no-save-optimizer"] / "checkpoints/step-000001/trainer_state.pt", weights_only=False)
    assert "optimizer" in with_opt and "optimizer" not in without
    size = lambda d: os.path.getsize(d / "checkpoints/step-000001/trainer_state.pt")  # noqa: E731
    assert size(out["--no-save-optimizer"]) < size(out["--save-optimizer"]) / 2
    r = invoke("train", "--output", out["--no-save-optimizer"], "--resume", "--steps", 2, "--quiet")
    assert r.exit_code == 0, r.output
    assert "no optimizer state" in caplog.text
