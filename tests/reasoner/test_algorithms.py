"""PPO and the GRPO variants: KL control, dynamic sampling, overlong handling, reference refresh,
presets, and learning on a toy task."""

import json
from statistics import fmean

import pytest
import torch
from click.testing import CliRunner

from reasoner.cli import main
from reasoner.config import PRESETS, TrainConfig, resolve_settings
from reasoner.kl import KLController
from reasoner.batch import StepBatch, minibatch_plan
from reasoner.samplers import Completion
from reasoner.train import overlong_penalty, train
from tests.conftest import write_jsonl


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
            if "reward/mean" in line]


def tiny_cfg(model, task, out, **kw):
    base = dict(model=str(model), task=task, output=str(out), sampler="hf", prompts_per_step=4, group_size=4,
                max_new_tokens=4, micro_batch_size=16, learning_rate=3e-3, eval_size=0, seed=0)
    return TrainConfig(**{**base, **kw})


def test_adaptive_kl_controller_moves_beta_toward_the_target():
    ctl = KLController(beta=0.1, target=0.05, horizon=100)
    # KL twice the target: error clipped to +0.2, beta *= 1 + 0.2 * 50 / 100
    assert ctl.update(kl=0.1, n=50) == pytest.approx(0.1 * 1.1)
    # KL at half the target: error -0.5 clipped to -0.2
    before = ctl.beta
    assert ctl.update(kl=0.025, n=50) == pytest.approx(before * 0.9)
    fixed = KLController(beta=0.1)
    assert fixed.update(kl=10.0, n=1000) == 0.1


def test_overlong_penalty_values():
    # budget 32, buffer 8: no penalty up to 24 tokens, then linear to -1 at 32
    assert [overlong_penalty(n, 32, 8) for n in (10, 24, 26, 28, 32)] == [0.0, 0.0, -0.25, -0.5, -1.0]


def test_overlong_mask_leaves_truncated_sequences_out_of_the_loss():
    comps = [Completion([5, 6, 1], [-1.0] * 3, "a", "stop"), Completion([5, 6, 7], [-1.0] * 3, "b", "length")]
    batch = StepBatch([[2, 3], [2, 3]], comps, [True, False])
    [[mb]] = batch.micro_batches(minibatch_plan(2, 1, 8, "s"), pad_id=0, device="cpu")
    rows = {i: r for r, i in enumerate(mb.index.tolist())}
    assert mb.loss_mask[rows[0]].tolist() == [1, 1, 1]
    assert mb.loss_mask[rows[1]].tolist() == [0, 0, 0]
    assert mb.completion_mask[rows[1]].tolist() == [1, 1, 1]  # still a real sequence for the metrics


def test_minibatch_plan_covers_each_sequence_once():
    plan = minibatch_plan(10, 3, 2, "seed")
    flat = [i for mb in plan for micro in mb for i in micro]
    assert sorted(flat) == list(range(10)) and len(plan) == 3
    assert all(len(micro) <= 2 for mb in plan for micro in mb)
    assert plan == minibatch_plan(10, 3, 2, "seed")


def test_presets_layer_under_explicit_settings():
    cfg = resolve_settings({"preset": "dapo", "clip_high": 0.3})
    assert (cfg.loss_agg, cfg.dynamic_sampling, cfg.overlong, cfg.beta, cfg.clip_high) == \
        ("token-mean", True, "penalty", 0.0, 0.3)
    assert resolve_settings({"preset": "dr-grpo"}).scale_rewards == "none"
    ppo = resolve_settings({"preset": "ppo"})
    assert (ppo.algorithm, ppo.kl_mode, ppo.kl_estimator) == ("ppo", "reward", "k1")
    # a resumed run keeps what it saved: the preset is not applied again over it
    saved = resolve_settings({"preset": "dapo", "beta": 0.01})
    assert resolve_settings({"steps": 99}, base=saved).beta == 0.01
    code = resolve_settings({"preset": "code", "steps": 5})
    assert (code.task, code.max_new_tokens, code.algorithm, code.steps) == ("code", 128, "grpo", 5)
    assert set(PRESETS) == {"grpo", "dapo", "dr-grpo", "ppo", "code"}


@pytest.fixture
def mixed_task(tmp_path):
    """Half the prompts are uniform (every reply matches '.*'), half are learnable (a leading digit)."""
    rows = []
    for i in range(32):
        pattern = r".*" if i % 2 else r"[0-9].*"
        rows.append({"id": f"q{i}", "prompt": f"item {i}", "reference": "-", "verifier": "format", "format": "regex",
                     "format_pattern": pattern})
    return "jsonl:" + str(write_jsonl(tmp_path / "mixed.jsonl", rows))


def test_dynamic_sampling_refills_the_batch_with_informative_groups(tiny_model, mixed_task, tmp_path):
    out = tmp_path / "dyn"
    train(tiny_cfg(tiny_model, mixed_task, out, steps=2, dynamic_sampling=True, dynamic_sampling_rounds=4,
                   group_size=8), show_progress=False)
    for m in metrics(out):
        assert m["groups/zero_std_frac"] > 0  # the first round holds uniform groups...
        assert 1 <= m["samples/rounds"] <= 4
        assert m["samples/generated"] > 4 * 8
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    # ...and every group the learner saw has mixed rewards
    assert all(len({c["reward"] for c in s["completions"]}) > 1 for s in samples)


def test_dynamic_sampling_respects_its_cap(tiny_model, tmp_path):
    rows = [{"prompt": f"p{i}", "reference": "-", "verifier": "format", "format": "regex", "format_pattern": ".*"}
            for i in range(16)]
    task = "jsonl:" + str(write_jsonl(tmp_path / "uniform.jsonl", rows))
    out = tmp_path / "cap"
    train(tiny_cfg(tiny_model, task, out, steps=1, dynamic_sampling=True, dynamic_sampling_rounds=2),
          show_progress=False)
    [m] = metrics(out)
    assert m["samples/rounds"] == 2  # it gave up after the cap
    assert m["samples/generated"] == 4 * 4 + 2 * (2 * 4) * 4  # first round, then two rounds of 2 x missing prompts
    assert m["groups/zero_std_frac"] == 1.0


def test_reference_refresh_copies_the_policy(tiny_model, digit_task, tmp_path):
    from reasoner import checkpoint
    out = tmp_path / "refresh"
    train(tiny_cfg(tiny_model, digit_task, out, steps=2, beta=0.1, ref_refresh_every=2), show_progress=False)
    state = checkpoint.load_state(out / "checkpoints" / "step-000002")
    from safetensors.torch import load_file
    policy = load_file(str(out / "checkpoints" / "step-000002" / "model.safetensors"))
    assert all(torch.equal(state["reference"][k], policy[k]) for k in policy)


def test_grpo_variants_run(tiny_model, digit_task, tmp_path):
    out = tmp_path / "variants"
    train(tiny_cfg(tiny_model, digit_task, out, steps=2, loss_agg="token-mean", clip_high=0.28, dual_clip=3.0,
                   scale_rewards="batch", kl_estimator="k2", kl_mode="reward", adaptive_kl_target=0.01, minibatches=2,
                   num_iterations=2, early_stop_kl=10.0, entropy_coef=0.01, overlong="penalty", overlong_buffer=2),
          show_progress=False)
    m = metrics(out)
    assert len(m) == 2 and m[0]["updates"] == 4  # 2 passes x 2 minibatches
    assert m[1]["kl/beta"] != m[0]["kl/beta"]  # the adaptive controller moved beta


def test_early_stop_kl_stops_a_step_early(tiny_model, digit_task, tmp_path):
    out = tmp_path / "early"
    train(tiny_cfg(tiny_model, digit_task, out, steps=1, num_iterations=4, minibatches=2, learning_rate=0.05,
                   early_stop_kl=1e-6), show_progress=False)
    [m] = metrics(out)
    assert m["kl/early_stop"] == 1.0 and m["updates"] < 8


@pytest.mark.parametrize("critic", ["separate", "shared"])
def test_ppo_trains_and_resumes(tiny_model, digit_task, tmp_path, critic):
    out = tmp_path / critic
    args = ["train", "--model", str(tiny_model), "--task", digit_task, "--preset", "ppo", "--critic", critic,
            "--sampler", "hf", "--steps", "2", "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "4",
            "--eval-size", "0", "--output", str(out), "--quiet"]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = metrics(out)
    for key in ("loss/value", "value/explained_variance", "kl/approx", "clip/frac_low", "clip/frac_high", "entropy",
                "kl/ref", "groups/zero_std_frac"):
        assert key in m[-1], key
    r = CliRunner().invoke(main, ["train", "--output", str(out), "--resume", "--steps", "3", "--quiet"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert [x["step"] for x in metrics(out)] == [1, 2, 3]


def _learns(run_dir) -> tuple[float, float]:
    rewards = [m["reward/mean"] for m in metrics(run_dir)]
    return fmean(rewards[:5]), fmean(rewards[-5:])


def test_ppo_raises_mean_reward_of_a_random_model(tiny_model, digit_task, tmp_path):
    cfg = tiny_cfg(tiny_model, digit_task, tmp_path / "ppo", steps=30, group_size=8, micro_batch_size=32,
                   **{**PRESETS["ppo"], "learning_rate": 3e-3, "critic_learning_rate": 3e-3})
    train(cfg, show_progress=False)
    first, last = _learns(tmp_path / "ppo")
    assert first < 0.4 and last > first + 0.3


def test_dapo_preset_raises_mean_reward(tiny_model, digit_task, tmp_path):
    cfg = tiny_cfg(tiny_model, digit_task, tmp_path / "dapo", steps=30, group_size=8, micro_batch_size=32,
                   **{**PRESETS["dapo"], "overlong": "none"})
    train(cfg, show_progress=False)
    first, last = _learns(tmp_path / "dapo")
    assert first < 0.4 and last > first + 0.3


def test_pipelined_rollout_chunks_judge_the_same_samples(tiny_model, digit_task, tmp_path):
    runs = {}
    for chunks in (1, 3):
        out = tmp_path / f"chunks{chunks}"
        train(tiny_cfg(tiny_model, digit_task, out, steps=2, rollout_chunks=chunks, seed_per_prompt=True),
              show_progress=False)
        runs[chunks] = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert runs[1] == runs[3]  # same completions, rewards, advantages and verdicts, in the same order
