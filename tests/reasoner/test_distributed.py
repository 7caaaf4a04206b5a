"""Two learner processes under `accelerate launch` (gloo on CPU) against one process, full and LoRA."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

ARGS = ["train", "--sampler", "hf", "--device", "cpu", "--seed-per-prompt", "--steps", "2", "--prompts-per-step", "4",
        "--group-size", "4", "--max-new-tokens", "5", "--micro-batch-size", "4", "--learning-rate", "1e-2",
        "--eval-size", "0", "--quiet"]
TOL = 1e-5  # fp32 sums in another order (per-process micro-batches, gloo all-reduce) after two Adam steps


def launch(cmd, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": "29517"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_two_processes_match_one(lora, tiny_model, digit_task, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    common = [*ARGS, "--model", str(tiny_model), "--task", digit_task]
    if lora:  # adapters only, DDP over the adapter tensors
        common += ["--lora-rank", "4", "--entropy-coef", "0.05"]
    launch([sys.executable, "-m", "reasoner.cli", *common, "--output", str(one)], tmp_path)
    launch([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", "reasoner.cli", *common, "--output", str(two)], tmp_path)

    summary = json.loads((two / "summary.json").read_text())
    assert summary["processes"] == 2
    a, b = summary["param_checksums"]
    assert a == b  # both processes hold identical weights

    weights = "adapter_model.safetensors" if lora else "model.safetensors"
    w1 = load_file(str(one / "checkpoints" / "step-000002" / weights))
    w2 = load_file(str(two / "checkpoints" / "step-000002" / weights))
    if lora:
        assert w1 and all("lora_" in k for k in w1)  # the checkpoint is the adapter alone
        assert any(w1[k].abs().max() > 0 for k in w1 if "lora_B" in k)  # training moved the adapters (B starts at 0)
    else:
        initial = load_file(str(tiny_model / "model.safetensors"))
        assert any(not torch.allclose(w1[k], initial[k]) for k in w1)  # training moved the weights
    assert w1.keys() == w2.keys() and all(torch.allclose(w1[k], w2[k], atol=TOL) for k in w1)

    m1 = [json.loads(line) for line in (one / "metrics.jsonl").read_text().splitlines()]
    m2 = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    for x, y in zip(m1, m2, strict=True):  # the same samples, rewards and losses
        assert x["reward/mean"] == y["reward/mean"]
        assert x["loss/total"] == pytest.approx(y["loss/total"], abs=1e-5)
    samples = (two / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2 * 4  # the main process wrote every process's groups


def test_global_batch_must_split_into_whole_groups(tiny_model, digit_task, tmp_path, monkeypatch):
    from reasoner.config import ConfigError, TrainConfig
    from reasoner.run import setup

    monkeypatch.setenv("WORLD_SIZE", "3")  # checked before any process group is needed
    cfg = TrainConfig(model=str(tiny_model), task=digit_task, prompts_per_step=4, sampler="hf", eval_size=0)
    with pytest.raises(ConfigError, match=r"prompts_per_step \(4\) must be divisible by the number of processes \(3\)"):
        setup(cfg, tmp_path, None)
