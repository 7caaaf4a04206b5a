"""LoRA: only the adapters train, the reference is the base with the adapters off, the sampler
samples from base + current adapters (a stale adapter is caught), resume, checkpoints, merge."""

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from reasoner import lora, models
from reasoner.batch import completion_logprobs, pack
from reasoner.cli import main
from reasoner.config import ConfigError, TrainConfig
from reasoner.loss import grpo_loss
from reasoner.prompts import encode_prompts
from reasoner.samplers import SamplingParams
from reasoner.samplers.hf import HFSampler

TOL = 1e-3
FAST = ["--sampler", "hf", "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "6",
        "--micro-batch-size", "4", "--learning-rate", "1e-2", "--eval-size", "0", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def lora_policy(tiny_model, rank=4):
    return lora.wrap(models.load_model(str(tiny_model)).eval(), rank, 16.0, "all-linear")


def gap(model, tokenizer, prompts, groups, temperature=0.8):
    """Largest per-token gap between the sampler's log-probs and ``model``'s."""
    flat = [c for g in groups for c in g]
    mb = pack([p for p, g in zip(prompts, groups) for _ in g], [c.token_ids for c in flat], tokenizer.pad_token_id,
              logprobs=[c.logprobs for c in flat])
    with torch.no_grad():
        logp = completion_logprobs(model, mb, temperature)
    return ((logp - mb.sampler_logprobs).abs() * mb.completion_mask).max().item()


def adapter_step(policy, tokenizer, prompts, groups, temperature=0.8):
    """One real GRPO step (large lr) on the adapters only."""
    flat = [c for g in groups for c in g]
    mb = pack([p for p, g in zip(prompts, groups) for _ in g], [c.token_ids for c in flat], tokenizer.pad_token_id)
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.5)
    logp = completion_logprobs(policy, mb, temperature)
    grpo_loss(logp=logp, old_logp=logp.detach(), advantages=torch.linspace(-1.5, 1.5, len(flat)),
              mask=mb.completion_mask).loss.backward()
    opt.step()


def assert_stale_adapter_is_caught(sampler, tokenizer, policy):
    """Synced: the sampler agrees with the LoRA learner; after an adapter update without a sync
    (a stale adapter) it disagrees; after syncing the merged weights it agrees again."""
    prompts = encode_prompts(tokenizer, ["1 + 1 = ?", "say hi", "count: 1 2 3"])
    params = SamplingParams(max_new_tokens=12, temperature=0.8)
    adapter_step(policy, tokenizer, prompts, sampler.generate(prompts, 4, params))
    sampler.load_weights(lora.merged_weights(policy))
    assert gap(policy, tokenizer, prompts, sampler.generate(prompts, 4, params)) < TOL

    adapter_step(policy, tokenizer, prompts, sampler.generate(prompts, 4, params))  # the sync is skipped
    assert gap(policy, tokenizer, prompts, sampler.generate(prompts, 4, params)) > 50 * TOL

    sampler.load_weights(lora.merged_weights(policy))
    assert gap(policy, tokenizer, prompts, sampler.generate(prompts, 4, params)) < TOL


def test_merged_weights_carry_base_names_and_the_adapters(tiny_model):
    policy = lora_policy(tiny_model)
    base = dict(models.load_model(str(tiny_model)).named_parameters())
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    merged = dict(lora.merged_weights(policy))
    assert set(merged) == set(base)  # X.base_layer.weight -> X.weight; no adapter tensors sent
    layer = policy.base_model.model.model.layers[0].self_attn.q_proj
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    want = base["model.layers.0.self_attn.q_proj.weight"] + layer.scaling["default"] * b @ a
    assert torch.allclose(merged["model.layers.0.self_attn.q_proj.weight"], want, atol=1e-6)
    assert torch.equal(merged["model.embed_tokens.weight"], base["model.embed_tokens.weight"])


def test_stale_adapter_is_caught_by_the_transformers_sampler(tiny_model):
    tokenizer = models.load_tokenizer(str(tiny_model))
    sampler = HFSampler(models.load_model(str(tiny_model)).eval(), tokenizer)  # its own copy of the base
    assert_stale_adapter_is_caught(sampler, tokenizer, lora_policy(tiny_model))


@pytest.mark.vllm
def test_stale_adapter_is_caught_by_the_vllm_sampler(tiny_model):
    pytest.importorskip("vllm")
    from reasoner.samplers.vllm import VLLMSampler

    tokenizer = models.load_tokenizer(str(tiny_model))
    sampler = VLLMSampler(str(tiny_model), tokenizer, max_model_len=256, kv_cache_gib=1, seed=0)
    try:
        assert_stale_adapter_is_caught(sampler, tokenizer, lora_policy(tiny_model))
    finally:
        sampler.close()


def test_only_the_adapters_train_and_the_reference_is_the_base(tiny_model, digit_task, tmp_path):
    from reasoner.run import setup
    from reasoner.train import train_step

    cfg = TrainConfig(model=str(tiny_model), task=digit_task, sampler="hf", prompts_per_step=2, group_size=4,
                      max_new_tokens=6, micro_batch_size=4, learning_rate=1e-2, eval_size=0, beta=0.1,
                      lora_rank=4, lora_alpha=8.0, lora_targets="q_proj,v_proj", output=str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    run = setup(cfg, tmp_path / "run", None)
    adapters = [p for n, p in run.bare_policy.named_parameters() if ".lora_" in n]
    assert len(adapters) == 2 * 2 * 2  # 2 layers x (q, v) x (A, B): lora_targets
    q = run.bare_policy.base_model.model.model.layers[0].self_attn.q_proj
    assert q.lora_A["default"].weight.shape[0] == 4 and q.scaling["default"] == 8.0 / 4  # lora_rank, lora_alpha
    held = [p for g in run.optimizer.param_groups for p in g["params"]]
    assert len(held) == len(adapters) and {id(p) for p in held} == {id(p) for p in adapters}
    assert isinstance(run.reference, lora.AdaptersOff) and not list(run.reference.parameters())
    base = {n: p.detach().clone() for n, p in run.bare_policy.named_parameters() if ".lora_" not in n}
    before = [p.detach().clone() for p in adapters]

    metrics = train_step(run, 0)
    assert all(torch.equal(p, base[n]) for n, p in run.bare_policy.named_parameters() if n in base)
    assert any(not torch.equal(p, q) for p, q in zip(adapters, before))
    assert metrics["logprobs/sampler_abs_diff"] < TOL  # the agreement metric, on the LoRA policy

    # the reference scores as the untouched base model does, while the adapters are on
    plain = models.load_model(str(tiny_model)).eval()
    prompts = encode_prompts(run.tokenizer, ["2 + 3 = ?"])
    groups = HFSampler(run.bare_policy, run.tokenizer).generate(prompts, 3, SamplingParams(max_new_tokens=8))
    flat = [c for g in groups for c in g]
    mb = pack(prompts * 3, [c.token_ids for c in flat], run.tokenizer.pad_token_id)
    with torch.no_grad():
        ref, want, policy = (completion_logprobs(m, mb, 1.0) for m in (run.reference, plain, run.bare_policy))
    assert torch.allclose(ref, want, atol=1e-6) and not torch.allclose(policy, want, atol=1e-4)


def test_lora_settings_are_checked():
    with pytest.raises(ConfigError, match="ref_refresh_every with LoRA"):
        TrainConfig(lora_rank=4, ref_refresh_every=2).validate()
    with pytest.raises(ConfigError, match="lora_rank must be >= 0"):
        TrainConfig(lora_rank=-1).validate()
    with pytest.raises(ConfigError, match=r"lora_dropout must be in \[0, 1\)"):
        TrainConfig(lora_rank=4, lora_dropout=1.0).validate()


def _lora_run(tiny_model, digit_task, tmp_path, **settings):
    from reasoner.run import setup

    cfg = TrainConfig(model=str(tiny_model), task=digit_task, sampler="hf", prompts_per_step=2, group_size=4,
                      max_new_tokens=6, micro_batch_size=4, learning_rate=1e-2, eval_size=0, beta=0.1,
                      entropy_coef=0.05, lora_rank=4, output=str(tmp_path / "run"), **settings)
    (tmp_path / "run").mkdir()
    return setup(cfg, tmp_path / "run", None)


def test_lora_dropout_acts_in_the_gradient_passes_only(tiny_model, digit_task, tmp_path):
    from reasoner.train import train_step

    run = _lora_run(tiny_model, digit_task, tmp_path, lora_dropout=0.5)
    drops = [m for n, m in run.bare_policy.named_modules() if ".lora_dropout." in n]
    assert drops and all(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in drops)  # lora_dropout reached peft
    seen = []  # (dropout active, gradients on) at every adapter call
    for m in drops:
        m.register_forward_hook(lambda mod, args, out: seen.append((mod.training, torch.is_grad_enabled())))
    metrics = train_step(run, 0)
    assert any(active and grad for active, grad in seen)  # the gradient passes drop adapter inputs
    assert all(not active for active, grad in seen if not grad)  # sampling and scoring never do
    assert not any(m.training for m in drops)  # back to eval mode after the update
    assert metrics["logprobs/sampler_abs_diff"] < 1e-5  # the agreement is measured without dropout


def test_lora_with_gradient_checkpointing_recomputes_layers_and_keeps_adapter_gradients(tiny_model):
    ids = torch.randint(0, 50, (2, 12))

    def adapter_grads(checkpointing):
        torch.manual_seed(0)
        policy = lora_policy(tiny_model)
        for n, p in policy.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1)  # a trained adapter (fresh ones have B = 0)
        if checkpointing:
            models.enable_gradient_checkpointing(policy)
        calls = []
        layers = policy.base_model.model.model.layers
        hooks = [layer.register_forward_pre_hook(lambda *a: calls.append(1)) for layer in layers]
        policy(ids).logits.float().pow(2).mean().backward()
        for h in hooks:
            h.remove()
        grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.requires_grad}
        assert all(p.grad is None for p in policy.parameters() if not p.requires_grad)  # the base stays frozen
        return grads, len(calls), len(layers)

    plain, calls, n_layers = adapter_grads(False)
    ckpt, calls_ckpt, _ = adapter_grads(True)
    assert calls == n_layers and calls_ckpt == 2 * n_layers  # each layer runs again in the backward pass
    assert plain.keys() == ckpt.keys() and all(".lora_" in n for n in plain)
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-6)


def test_a_lora_run_with_gradient_checkpointing_trains_the_adapters(tiny_model, digit_task, tmp_path):
    from reasoner.train import train_step

    run = _lora_run(tiny_model, digit_task, tmp_path, gradient_checkpointing=True, lora_dropout=0.1)
    layer = run.bare_policy.base_model.model.model.layers[0]
    assert layer.gradient_checkpointing and layer.training
    before = {n: p.detach().clone() for n, p in run.bare_policy.named_parameters()}
    metrics = train_step(run, 0)
    after = dict(run.bare_policy.named_parameters())
    assert any(not torch.equal(after[n], before[n]) for n in before if ".lora_" in n)
    assert all(torch.equal(after[n], before[n]) for n in before if ".lora_" not in n)
    assert metrics["logprobs/sampler_abs_diff"] < 1e-5


def test_lora_resume_equals_an_uninterrupted_run(tiny_model, digit_task, tmp_path):
    args = ["--model", tiny_model, "--task", digit_task, "--lora-rank", 4, "--beta", 0.05, "--entropy-coef", 0.01, *FAST]
    out = tmp_path / "run"
    assert invoke("train", *args, "--steps", 2, "--output", out).exit_code == 0
    ckpt = out / "checkpoints" / "step-000002"
    assert (ckpt / "adapter_model.safetensors").is_file() and (ckpt / "adapter_config.json").is_file()
    assert not (ckpt / "model.safetensors").exists()  # the adapter only, beside the base model's identity
    assert lora.base_of(ckpt) == str(tiny_model)
    r = invoke("train", "--output", out, "--resume", "--steps", 3, "--quiet")
    assert r.exit_code == 0, r.output
    straight = tmp_path / "straight"
    assert invoke("train", *args, "--steps", 3, "--output", straight).exit_code == 0
    a = load_file(str(out / "checkpoints" / "step-000003" / "adapter_model.safetensors"))
    b = load_file(str(straight / "checkpoints" / "step-000003" / "adapter_model.safetensors"))
    assert set(a) == set(b) and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(a[k].abs().max() > 0 for k in a if "lora_B" in k)  # the adapters did learn
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows2 = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert rows[2]["reward/mean"] == rows2[2]["reward/mean"]


@pytest.mark.parametrize("critic", ["shared", "separate"])
def test_ppo_with_lora(critic, tiny_model, digit_task, tmp_path):
    out = tmp_path / critic
    r = invoke("train", "--model", tiny_model, "--task", digit_task, "--algorithm", "ppo", "--critic", critic,
               "--lora-rank", 4, "--steps", 1, "--output", out, *FAST)
    assert r.exit_code == 0, r.output
    ckpt = out / "checkpoints" / "step-000001"
    assert (ckpt / "adapter_model.safetensors").is_file()
    state = torch.load(ckpt / "trainer_state.pt", weights_only=False)
    assert state["critic"]  # the value head (shared) or the full critic (separate) is saved beside the adapter


def test_adapter_checkpoint_evaluates_and_merges(tiny_model, digit_task, tmp_path, monkeypatch):
    monkeypatch.setenv("REASONER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert invoke("train", "--model", tiny_model, "--task", digit_task, "--lora-rank", 4, "--entropy-coef", 0.05,
                  "--steps", 1, "--output", out, *FAST, "--learning-rate", 5e-2).exit_code == 0
    ckpt = out / "checkpoints" / "step-000001"
    merged = tmp_path / "merged"
    r = invoke("models", "merge", ckpt, merged)
    assert r.exit_code == 0 and "merged into" in r.output, r.output
    assert (merged / "config.json").is_file() and (merged / "tokenizer.json").is_file()

    # the merged model computes what base + adapter computes, and differs from the base
    tokenizer = models.load_tokenizer(str(tiny_model))
    ids = torch.tensor([encode_prompts(tokenizer, ["7 + 8 = ?"])[0]])
    with torch.no_grad():
        peft_logits = lora.load(models.load_model(str(tiny_model)), ckpt, trainable=False).eval()(ids).logits
        merged_logits = models.load_model(str(merged)).eval()(ids).logits
        base_logits = models.load_model(str(tiny_model)).eval()(ids).logits
    assert torch.allclose(peft_logits, merged_logits, atol=1e-5)
    assert not torch.allclose(base_logits, merged_logits, atol=1e-4)

    # eval takes the adapter checkpoint (and its run directory) and scores what the merged model scores
    results = {}
    for name, model in (("ckpt", ckpt), ("run", out), ("merged", merged)):
        r = invoke("eval", model, "--task", f"jsonl:{digit_task.split(':', 1)[1]}", "--limit", 3,
                   "--max-new-tokens", 6, "--output", tmp_path / f"eval-{name}", "--quiet")
        assert r.exit_code == 0, r.output
        results[name] = sorted((tmp_path / f"eval-{name}").glob("*.jsonl"))[0].read_text()
    assert results["ckpt"] == results["run"] == results["merged"]

    r = invoke("models", "merge", tiny_model, tmp_path / "m2")
    assert r.exit_code == 1 and "not a LoRA checkpoint" in r.output


@pytest.mark.vllm
def test_lora_training_and_resume_keep_the_vllm_engine_in_step(tiny_model, digit_task, tmp_path):
    """Every step (the first after a resume included: the engine starts from the base and must be
    given the checkpoint's adapters) samples from base + the current adapters."""
    pytest.importorskip("vllm")
    from tests.reasoner.test_vllm_sampler import train_and_check_sync

    out, lora_args = tmp_path / "run", ("--lora-rank", "4", "--entropy-coef", "0.05", "--learning-rate", "5e-2")
    train_and_check_sync("vllm", tiny_model, digit_task, out, 2, *lora_args)
    r = invoke("train", "--output", out, "--resume", "--steps", 3, "--quiet")
    assert r.exit_code == 0, r.output
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert metrics[2]["logprobs/sampler_abs_diff"] < TOL
    adapter = load_file(str(out / "checkpoints" / "step-000003" / "adapter_model.safetensors"))
    assert any(adapter[k].abs().max() > 0 for k in adapter if "lora_B" in k)
