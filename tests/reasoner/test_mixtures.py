"""Task mixtures (--task given several times) and code rewards at training speed: per-task metrics,
sandbox executions per second, and a sandbox that goes down mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from reasoner import tasks
from reasoner.config import ConfigError, TrainConfig, from_dict, load_yaml
from reasoner.run import mix
from reasoner.tasks import TaskError
from tests.conftest import ROOT, require_docker
from tests.reasoner.test_train_cli import FAST, invoke, read_jsonl


def test_a_mixture_spec_names_its_parts_and_weights():
    assert tasks.mixture("arithmetic") == [("arithmetic", "arithmetic", 1.0)]
    assert tasks.mixture("arithmetic:ops=+-:2 + code:0.5 + arithmetic:ops=*") == [
        ("arithmetic", "arithmetic:ops=+-", 2.0), ("code", "code", 0.5), ("arithmetic-2", "arithmetic:ops=*", 1.0)]
    assert tasks.mixture("gsm8k:data/gsm8k_train.jsonl") == [("gsm8k", "gsm8k:data/gsm8k_train.jsonl", 1.0)]
    for bad in ("arithmetic:0 + code", "arithmetic + :2", "code:-1 + arithmetic"):
        with pytest.raises(TaskError, match="positive weight"):
            tasks.mixture(bad)


def test_parts_are_sampled_in_proportion_to_their_weights():
    a, b = list(range(100)), list(range(1000, 1030))
    examples, labels = mix([("a", a, 1.0), ("b", b, 3.0)])
    assert (labels.count("a"), labels.count("b")) == (32, 98)  # 130 examples, a quarter and three quarters
    assert examples[32:62] == b and examples[62:92] == b  # the smaller part cycles
    assert mix([("a", a, 5.0)]) == (a, ["a"] * 100)


def test_task_repeated_on_the_command_line_or_a_list_in_a_file(tmp_path):
    r = invoke("train", "--task", "arithmetic:0.5", "--task", "code:levels=1:0.5", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "task: 'arithmetic:0.5 + code:levels=1:0.5'" in r.output or "task: arithmetic:0.5 + code:levels=1:0.5" in r.output
    assert "train task: arithmetic, weight 0.5 (5000 problems)" in r.output
    assert "train task: code:levels=1, weight 0.5 (2000 problems)" in r.output
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"task": ["arithmetic:1", "code:3"]}))
    assert from_dict(TrainConfig, load_yaml(path)).task == "arithmetic:1 + code:3"
    with pytest.raises(ConfigError, match="task: task mixture 'arithmetic:0 \\+ code'.*positive weight"):
        from_dict(TrainConfig, {"task": "arithmetic:0 + code"})


@pytest.mark.docker
def test_a_math_and_code_mixture_trains_end_to_end(tiny_model, tmp_path):
    """Each prompt is judged by its own task's verifier (sympy for arithmetic, the sandbox for code);
    metrics.jsonl has reward and accuracy per task, the held-out evaluation is per task too."""
    require_docker()
    out = tmp_path / "run"
    r = invoke("train", "--model", tiny_model, "--task", "arithmetic:1", "--task", "code:3", "--steps", 2,
               "--eval-size", 3, "--max-prompt-tokens", 400, "--output", out, "--verifier-option", "code.extract=whole",
               "--verifier-option", "code.workers=1", *FAST, "--prompts-per-step", 4)
    assert r.exit_code == 0, r.output
    metrics = read_jsonl(out / "metrics.jsonl")
    evals = [m for m in metrics if "eval/accuracy" in m]
    steps = [m for m in metrics if "reward/mean" in m]
    assert [m["step"] for m in evals] == [0, 2] and len(steps) == 2
    assert {"eval/arithmetic/accuracy", "eval/code/accuracy"} <= set(evals[0])
    assert sum(m["task/arithmetic/prompts"] + m["task/code/prompts"] for m in steps) == 8
    code_steps = [m for m in steps if m["task/code/prompts"]]
    assert code_steps, "no code prompt in two steps of a 1:3 mixture"
    for m in code_steps:
        assert 0 <= m["task/code/accuracy"] <= m["task/code/reward"] + 1e-9 <= 1
        # the whole reply runs as a program: one sandbox execution per code completion that is not blank
        assert 0 < m["sandbox/executions"] <= 4 * m["task/code/prompts"] and m["sandbox/executions_per_s"] > 0
    reasons: dict[str, set] = {"math": set(), "code": set()}
    for sample in read_jsonl(out / "samples.jsonl"):
        kind = "code" if isinstance(sample["reference"], dict) else "math"
        reasons[kind] |= {c["verdicts"]["task"]["reason"] for c in sample["completions"]}
    assert reasons["code"] and reasons["code"] <= {"correct", "no_code", "failed", "runtime_error", "compile_error",
                                                   "timeout", "memory"}, reasons
    assert not reasons["math"] & {"failed", "runtime_error", "compile_error"}, reasons
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["accuracy_before_by_task"]) == {"arithmetic", "code"}
    assert summary["eval_size"] == 6 and summary["sandbox_executions_per_s"] > 0
    records = [json.loads(line) for line in (out / "eval_before.jsonl").read_text().splitlines()]
    assert [r["task"] for r in records] == ["arithmetic"] * 3 + ["code"] * 3


@pytest.mark.docker
def test_a_sandbox_that_goes_down_stops_the_run_and_keeps_the_last_checkpoint(tiny_model, tmp_path):
    """The sandbox's Docker endpoint dies and its containers are killed during a run: the run stops
    with one line naming the cause, before learning from the unjudged step, and keeps its checkpoint."""
    require_docker()
    from reasoner.sandbox import engine
    from tests.sandbox.docker_endpoints import LoopbackProxy

    proxy = LoopbackProxy().start()
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "reasoner.cli", "train", "--model", str(tiny_model), "--task", "code",
           "--steps", "500", "--save-every", "1", "--eval-size", "0", "--max-prompt-tokens", "400", "--output", str(out),
           "--verifier-option", "code.extract=whole", "--verifier-option", "code.workers=1",
           "--verifier-option", f"code.hosts={proxy.url}", *FAST]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    api = engine.connect(timeout=10)
    try:
        deadline = time.monotonic() + 420  # start-up (torch, the model, the first containers) included
        while not (out / "checkpoints" / "step-000002").is_dir():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run did not reach step 2"
            time.sleep(0.2)
        proxy.stop()  # the endpoint dies ...
        for info in engine.our_containers(api):  # ... and the run's containers are killed
            if (info.get("Labels") or {}).get(engine.OWNER, "").endswith(f"/{proc.pid}"):
                api.remove_container(info["Id"], force=True)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        proxy.stop()
        api.close()
    assert proc.returncode == 1, (stdout, stderr)
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("stopped (sandbox down: ")]
    assert len(lines) == 1, stderr
    done = int(lines[0].split(" after step ")[1].split()[0])
    assert f"last checkpoint: step {done}" in lines[0]
    assert (out / "checkpoints" / f"step-{done:06d}" / "trainer_state.pt").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stopped_by"].startswith("sandbox down")
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl")] == list(range(1, done + 1))
