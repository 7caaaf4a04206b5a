"""Every training setting does something: for each, a run that shows it (tiny model, 1-2 steps).

``test_a_setting_changes_the_run`` trains twice with the same seed, once with each of two values
of one setting, and checks that what the setting governs came out different: were the setting
ignored, both runs would be identical (training is deterministic) and the test would fail. The
other tests check a setting's exact effect. tests/reasoner/test_settings_coverage.py maps every
field of TrainConfig to the tests that exercise it.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from reasoner.config import ConfigError, TrainConfig
from reasoner.train import train
from tests.conftest import write_jsonl

BASE = dict(sampler="hf", prompts_per_step=2, group_size=8, max_new_tokens=4, micro_batch_size=8, learning_rate=1e-2,
            eval_size=0, steps=2, seed=0)
PPO = dict(algorithm="ppo", beta=0.0, critic="shared")


def run(model, task, out, **settings):
    summary = train(TrainConfig(**{**BASE, "model": str(model), "task": task, "output": str(out), **settings}),
                    show_progress=False)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return [m for m in lines if "reward/mean" in m], samples, summary


def texts(samples):
    return [c["text"] for s in samples for c in s["completions"]]


def final_weights(out):
    last = sorted((out / "checkpoints").iterdir())[-1]
    return {k: v.double().sum().item() for k, v in load_file(str(last / "model.safetensors")).items()}


# setting: (value a, value b, other settings of both runs, what must differ)
CASES = {
    "max_new_tokens": (4, 2, {}, "completion/len_max"),
    "temperature": (0.7, 1.5, {}, "texts"),
    "top_p": (1.0, 0.3, {}, "texts"),
    "learning_rate": (1e-2, 1e-3, {}, "weights"),
    "warmup_steps": (0, 3, {}, "lr"),
    "weight_decay": (0.0, 0.5, {}, "weights"),
    "algorithm": ("grpo", "ppo", {"critic": "shared"}, "loss/total"),
    "beta": (0.0, 0.5, {}, "weights"),
    "kl_estimator": ("k1", "k3", {"beta": 0.5}, "kl/ref"),
    "kl_mode": ("loss", "reward", {"beta": 0.5}, "advantages"),
    "clip_low": (1e-3, 0.5, {"num_iterations": 3, "clip_high": 10.0}, "clip/frac_low"),
    "clip_high": (1e-3, 0.5, {"num_iterations": 3, "learning_rate": 0.05}, "clip/frac_high"),
    "dual_clip": (0.0, 1.01, {"num_iterations": 3, "learning_rate": 0.05, "clip_low": 1e-3}, "clip/frac_dual"),
    "loss_agg": ("seq-mean-token-mean", "token-mean", {"max_new_tokens": 40}, "weights"),  # some stop early
    "num_iterations": (1, 2, {}, "updates"),
    "minibatches": (1, 2, {}, "updates"),
    "scale_rewards": ("group", "none", {}, "advantages"),
    "overlong": ("none", "penalty", {"overlong_buffer": 2}, "reward/mean"),
    # completions that end (eos) within the last 30 tokens of the budget are penalised by one buffer, not the other
    "overlong_buffer": (10, 30, {"overlong": "penalty", "max_new_tokens": 40, "prompts_per_step": 4, "group_size": 8,
                                 "steps": 1}, "reward/mean"),
    "entropy_coef": (0.0, 0.5, {}, "loss/total"),
    "critic": ("separate", "shared", {**PPO, "critic_learning_rate": 1e-2}, "loss/total"),
    "critic_learning_rate": (1e-5, 5e-2, {**PPO, "critic": "separate"}, "value/mean"),
    "vf_coef": (0.5, 2.0, PPO, "loss/total"),
    "value_clip": (0.0, 1e-4, {**PPO, "num_iterations": 3}, "loss/value"),
    "gamma": (1.0, 0.5, PPO, "value/returns_mean"),
    "lam": (0.95, 0.0, PPO, "value/returns_mean"),
    "whiten_advantages": (True, False, PPO, "advantages"),
    "max_grad_norm": (0.0, 1e-3, {}, "weights"),
    "old_logprobs": ("learner", "sampler", {"top_p": 0.8}, "loss/total"),
    "tis_cap": (0.0, 2.0, {"top_p": 0.8}, "loss/total"),
    "system_prompt": (None, "Answer with one digit.", {}, "texts"),
    "seed": (0, 1, {}, "texts"),
}


def outcome(out, metrics, samples, what):
    if what == "texts":
        return texts(samples)
    if what == "advantages":
        return [c["advantage"] for s in samples for c in s["completions"]]
    if what == "weights":
        return final_weights(out)
    return [m[what] for m in metrics]


@pytest.mark.parametrize("name", list(CASES))
def test_a_setting_changes_the_run(name, tiny_model, half_task, always_task, tmp_path):
    a, b, extra, what = CASES[name]
    task = always_task if extra.get("algorithm") == "ppo" else half_task  # PPO: every reward 1, GAE has a signal
    results = []
    for label, value in (("a", a), ("b", b)):
        out = tmp_path / label
        metrics, samples, _ = run(tiny_model, task, out, **{**extra, name: value})
        results.append(outcome(out, metrics, samples, what))
    assert results[0] != results[1], f"{name}={a!r} and {name}={b!r} gave the same {what}"


def regex_task(path, pattern: str) -> str:
    rows = [{"id": f"q{i}", "prompt": f"say something {i}", "reference": "-", "verifier": "format", "format": "regex",
             "format_pattern": pattern} for i in range(32)]
    return "jsonl:" + str(write_jsonl(path, rows))


@pytest.fixture
def half_task(tmp_path):
    """Reward 1 when the reply starts with a digit or a lower-case letter: 36 of the 83 tokens, so a random
    policy's groups have mixed rewards (non-zero advantages)."""
    return regex_task(tmp_path / "half.jsonl", "[0-9a-z].*")


@pytest.fixture
def always_task(tmp_path):
    return regex_task(tmp_path / "always.jsonl", ".*")


def test_eval_task_is_the_held_out_set(tiny_model, digit_task, tmp_path):
    # a JSONL task has no test split: without eval_task there is nothing to evaluate
    _, _, summary = run(tiny_model, digit_task, tmp_path / "a", steps=1, eval_size=5,
                        eval_task="arithmetic:max_value=9,test_size=20")
    assert summary["eval_size"] == 5 and summary["accuracy_before"] is not None


def test_max_prompt_tokens_skips_longer_prompts(tiny_model, tmp_path, caplog):
    rows = [{"id": f"s{i}", "prompt": f"{i}", "reference": "-", "verifier": "format", "format": "regex",
             "format_pattern": "[0-9].*"} for i in range(4)]
    rows.append({"id": "long", "prompt": "x" * 200, "reference": "-", "verifier": "format", "format": "regex",
                 "format_pattern": "[0-9].*"})
    task = "jsonl:" + str(write_jsonl(tmp_path / "mixed.jsonl", rows))
    with caplog.at_level(logging.WARNING):
        _, samples, _ = run(tiny_model, task, tmp_path / "a", steps=3, max_prompt_tokens=100)
    assert "skipped 1 prompt(s) longer than max_prompt_tokens=100" in caplog.text
    assert "long" not in {s["id"] for s in samples} and len(samples) == 6  # 3 steps x 2 prompts


def test_adaptive_kl_control_steps_beta_over_its_horizon(tiny_model, digit_task, tmp_path):
    # step 1: KL to the reference ~0, far under the target 1: error clipped to -0.2, n = 2 x 8 = 16 sequences,
    # beta <- 0.1 * (1 - 0.2 * 16 / 32)
    metrics, _, _ = run(tiny_model, digit_task, tmp_path / "a", beta=0.1, adaptive_kl_target=1.0,
                        adaptive_kl_horizon=32)
    assert metrics[0]["kl/beta"] == pytest.approx(0.1)
    assert metrics[1]["kl/beta"] == pytest.approx(0.1 * (1 - 0.2 * 16 / 32))


def test_save_every_and_keep_checkpoints(tiny_model, digit_task, tmp_path):
    run(tiny_model, digit_task, tmp_path / "all", steps=3, save_every=1, keep_checkpoints=3)
    assert sorted(p.name for p in (tmp_path / "all" / "checkpoints").iterdir()) == \
        ["step-000001", "step-000002", "step-000003"]
    run(tiny_model, digit_task, tmp_path / "one", steps=3, save_every=1, keep_checkpoints=1)
    assert [p.name for p in (tmp_path / "one" / "checkpoints").iterdir()] == ["step-000003"]


def test_micro_batch_size_splits_the_forward_passes(tiny_model, digit_task, tmp_path, monkeypatch):
    import reasoner.grpo

    sizes = []
    real = reasoner.grpo.completion_logits

    def counted(model, mb):  # the real forward pass, its batch size noted
        sizes.append(len(mb.index))
        return real(model, mb)

    monkeypatch.setattr(reasoner.grpo, "completion_logits", counted)
    run(tiny_model, digit_task, tmp_path / "a", steps=1, micro_batch_size=3, beta=0.0)
    assert sizes == [3, 3, 3, 3, 3, 1]  # 16 sequences, one pass


def test_rollout_chunks_split_the_generation(tiny_model, digit_task, tmp_path, monkeypatch):
    from reasoner.samplers.hf import HFSampler

    calls = []
    real = HFSampler.generate

    def counted(self, prompts, n, params):
        calls.append(len(prompts))
        return real(self, prompts, n, params)

    monkeypatch.setattr(HFSampler, "generate", counted)
    run(tiny_model, digit_task, tmp_path / "a", steps=1, prompts_per_step=4, rollout_chunks=2)
    assert calls == [2, 2]  # prompts per generate call


def test_dtype_is_the_parameters_dtype(tiny_model, digit_task, tmp_path):
    run(tiny_model, digit_task, tmp_path / "a", steps=1, dtype="bfloat16", beta=0.0)
    weights = load_file(str(tmp_path / "a" / "checkpoints" / "step-000001" / "model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}


def test_device_is_used(tiny_model, digit_task, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: asking for it is not an error")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        run(tiny_model, digit_task, tmp_path / "a", steps=1, device="cuda")


def test_threads_sets_torch_threads(tiny_model, digit_task, tmp_path, monkeypatch):
    # noted at the call: what torch.get_num_threads reports afterwards also depends on the CPU
    # affinity that earlier tests in the process left (a vLLM engine pins its thread)
    asked = []
    real = torch.set_num_threads

    def noted(n):
        asked.append(n)
        real(n)

    before = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", noted)
    try:
        run(tiny_model, digit_task, tmp_path / "a", steps=1, threads=2)
    finally:
        real(before)
    assert asked == [2]


def test_settings_are_frozen(tiny_model, digit_task, tmp_path):
    cfg = TrainConfig(model=str(tiny_model), task=digit_task)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.beta = 0.5
    assert dataclasses.replace(cfg, beta=0.5).beta == 0.5 and cfg.beta == 0.04


def test_the_same_settings_give_the_same_run(tiny_model, half_task, tmp_path):
    # the control of test_a_setting_changes_the_run: a difference there comes from the setting alone
    results = []
    for label in ("a", "b"):
        metrics, samples, _ = run(tiny_model, half_task, tmp_path / label, beta=0.5, num_iterations=2)
        timeless = [{k: v for k, v in m.items() if not k.startswith(("time/", "throughput/"))} for m in metrics]
        results.append((timeless, texts(samples), final_weights(tmp_path / label)))
    assert results[0] == results[1]
