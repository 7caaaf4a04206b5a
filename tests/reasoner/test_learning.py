"""The core claim of the method: GRPO raises the reward of a policy on a learnable task."""

import json
from statistics import fmean

from reasoner.config import TrainConfig
from reasoner.train import train


def test_grpo_raises_mean_reward_of_a_random_model(tiny_model, digit_task, tmp_path):
    # reward 1 when the reply starts with a digit: 10 of the 83 tokens, so a random policy starts low
    cfg = TrainConfig(model=str(tiny_model), task=digit_task, output=str(tmp_path / "run"), steps=30,
                      prompts_per_step=4, group_size=8, max_new_tokens=4, micro_batch_size=32,
                      learning_rate=3e-3, beta=0.04, eval_size=0, seed=0, sampler="hf")
    train(cfg, show_progress=False)
    rewards = [json.loads(line)["reward/mean"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first, last = fmean(rewards[:5]), fmean(rewards[-5:])
    assert first < 0.4
    assert last > first + 0.4, rewards
