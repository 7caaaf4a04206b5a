"""The real default model through the real CLI: a short GRPO run on SmolLM2-135M-Instruct."""

import json

import pytest
from click.testing import CliRunner

from reasoner.cli import main


@pytest.mark.slow
def test_default_model_trains_two_steps(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "train", "--steps", "2", "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "16",
        "--eval-size", "8", "--output", str(out), "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "held-out accuracy (8 problems, greedy)" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "smollm2-135m" and summary["steps"] == 2
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "reward/mean" in m]
    assert len(steps) == 2
    # the learner scores sampled tokens as the sampler drew them (same weights, same temperature)
    assert steps[0]["logprobs/sampler_abs_diff"] < 1e-3
    if steps[0]["grad/norm"] > 0:  # a first step whose groups all tied has nothing to learn
        assert steps[1]["kl/ref"] > 0  # the policy moved away from the reference after one update
    assert (out / "checkpoints" / "step-000002" / "model.safetensors").is_file()
