"""`reasoner train` end to end through click's runner on a tiny random model."""

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from reasoner.cli import main

FAST = ["--sampler", "hf", "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "6", "--micro-batch-size", "4",
        "--learning-rate", "1e-3", "--quiet"]


def invoke(*args):
    result = CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)
    return result


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def weights(ckpt):
    return load_file(str(ckpt / "model.safetensors"))


def test_train_then_resume(tiny_model, digit_task, tmp_path):
    out = tmp_path / "run"
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 2, "--eval-size", 0,
               "--output", out, *FAST)
    assert r.exit_code == 0, r.output
    assert "run: " in r.output and "seconds per step" in r.output
    for name in ("config.yaml", "metrics.jsonl", "samples.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    ckpt = out / "checkpoints" / "step-000002"
    assert (ckpt / "config.json").is_file() and (ckpt / "trainer_state.pt").is_file()
    assert (ckpt / "tokenizer.json").is_file()
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2]
    for key in ("reward/mean", "reward/task", "accuracy", "kl/ref", "clip/frac", "entropy", "completion/len_mean",
                "time/generate", "time/verify", "time/learn", "throughput/tokens_per_s", "grad/norm"):
        assert key in metrics[0], key
    samples = read_jsonl(out / "samples.jsonl")
    assert len(samples) == 2 * 2 and len(samples[0]["completions"]) == 4
    assert {"text", "reward", "advantage", "verdicts"} <= set(samples[0]["completions"][0])

    r = invoke("train", "--output", out, "--resume", "--steps", 3, "--quiet")
    assert r.exit_code == 0, r.output
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]
    assert (out / "checkpoints" / "step-000003" / "trainer_state.pt").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == 2 and summary["steps_this_session"] == 1

    # the resumed run equals an uninterrupted 3-step run: weights, optimizer and RNG all restored
    straight = tmp_path / "straight"
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 3, "--eval-size", 0,
               "--output", straight, *FAST)
    assert r.exit_code == 0, r.output
    a, b = weights(out / "checkpoints" / "step-000003"), weights(straight / "checkpoints" / "step-000003")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert read_jsonl(out / "metrics.jsonl")[2]["reward/mean"] == read_jsonl(straight / "metrics.jsonl")[2]["reward/mean"]


def test_existing_run_needs_resume(tiny_model, digit_task, tmp_path):
    out = tmp_path / "run"
    assert invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 1, "--eval-size", 0,
                  "--output", out, *FAST).exit_code == 0
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 1, "--output", out, *FAST)
    assert r.exit_code == 1 and "pass --resume" in r.output
    r = invoke("train", "--output", out, "--resume", "--steps", 1)
    assert r.exit_code == 1 and "pass --steps N with N > 1" in r.output
    r = invoke("train", "--output", tmp_path / "nothing", "--resume")
    assert r.exit_code == 1 and "nothing to resume" in r.output


def test_before_after_evaluation_on_held_out_split(tiny_model, tmp_path):
    out = tmp_path / "run"
    r = invoke("train", "--model", tiny_model, "--task", "arithmetic:max_value=9,test_size=20", "--steps", 1,
               "--eval-size", 8, "--output", out, *FAST)
    assert r.exit_code == 0, r.output
    assert "held-out accuracy (8 problems, greedy): before" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["accuracy_before"] <= 1 and 0 <= summary["accuracy_after"] <= 1
    evals = [m for m in read_jsonl(out / "metrics.jsonl") if "eval/accuracy" in m]
    assert [m["step"] for m in evals] == [0, 1]
    assert len(read_jsonl(out / "eval_after.jsonl")) == 8


@pytest.mark.parametrize("args, message", [
    (["--model", "/no/such/model"], "model '/no/such/model' not found: tried an alias"),
    (["--task", "nosuch"], "unknown task 'nosuch'"),
    (["--rewards", "task=1", "--rewards", "nosuch=1"], "unknown verifier 'nosuch'"),
    (["--group-size", "1"], "group_size must be at least 2"),
    (["--config", "/no/such.yaml"], "config file not found"),
])
def test_bad_input_is_one_line(args, message, tiny_model, tmp_path):
    base = ["train", "--model", tiny_model, "--sampler", "hf", "--steps", "1", "--output", tmp_path / "r", "--quiet"]
    r = invoke(*base, *args)
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_model_directory_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    r = invoke("train", "--model", tmp_path / "empty", "--quiet", "--output", tmp_path / "r")
    assert r.exit_code == 1 and "has no config.json" in r.output


def test_malformed_rows_are_skipped_and_counted(tiny_model, tmp_path, caplog):
    data = tmp_path / "d.jsonl"
    rows = [json.dumps({"prompt": f"q{i}", "reference": "x", "verifier": "format", "format": "regex",
                        "format_pattern": "[0-9].*"}) for i in range(4)]
    data.write_text("\n".join(rows[:2] + ["{broken"] + rows[2:]) + "\n")
    r = invoke("train", "--model", tiny_model, "--task", f"jsonl:{data}", "--steps", 1, "--eval-size", 0,
               "--output", tmp_path / "r", *FAST)
    assert r.exit_code == 0, r.output
    assert "skipped 1 malformed row(s), first at line 3" in caplog.text


def test_a_crashing_plugin_does_not_stop_training(tiny_model, digit_task, tmp_path, plugin_dir):
    out = tmp_path / "r"
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--steps", 1, "--eval-size", 0,
               "--rewards", "task=1", "--rewards", "boom=0.5", "--output", out, *FAST)
    assert r.exit_code == 0, r.output
    m = read_jsonl(out / "metrics.jsonl")[0]
    assert m["reward/boom_errors"] == 8 and m["reward/boom"] == 0.0
    sample = read_jsonl(out / "samples.jsonl")[0]["completions"][0]
    assert sample["verdicts"]["boom"]["reason"] == "verifier_error"
