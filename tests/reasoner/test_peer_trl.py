"""The GRPO loss against TRL's GRPOTrainer (a peer, installed by the dev extra): same model, same
tokens, same old and reference log-probs and advantages -> the same per-token log-probs, the same
loss value and the same gradients.

Prompts share one length here (TRL's forward takes no position ids, so left padding would change
its positions, not ours); completions have different lengths, so masking and the per-sequence
token mean are compared too. TRL's default ``use_bias_correction_kl=True`` weights the KL term by
pi/pi_old (samples drawn from pi_old); the DeepSeekMath formula this project implements does not,
so the comparison turns it off.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from reasoner.batch import completion_logprobs, pack
from reasoner.loss import grpo_loss

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

BETA, EPS, TEMPERATURE = 0.04, 0.2, 0.7


def trl_trainer(model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, num_generations=4,
                        max_completion_length=8, beta=BETA, epsilon=EPS, loss_type="grpo", temperature=TEMPERATURE,
                        use_cpu=True, report_to=[], logging_steps=1, save_strategy="no", bf16=False,
                        use_bias_correction_kl=False)
    data = datasets.Dataset.from_list([{"prompt": f"q{i}"} for i in range(8)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions),
                              args=config, train_dataset=data, processing_class=tokenizer)
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def test_grpo_loss_and_gradients_match_trl(tiny_model, tmp_path):
    trainer = trl_trainer(tiny_model, tmp_path)
    model = trainer.model
    model.train()
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 60, (6,), generator=g).tolist() for _ in range(4)]
    lengths = [8, 3, 5, 1]
    completions = [torch.randint(3, 60, (n,), generator=g).tolist() for n in lengths]
    mb = pack(prompts, completions, pad_id=0)

    ours_logp = completion_logprobs(model, mb, TEMPERATURE)
    mask = mb.completion_mask.float()
    # old and reference log-probs a little away from the current ones, so ratios clip and KL is non-zero
    old = (ours_logp.detach() + 0.3 * torch.randn(ours_logp.shape, generator=g)) * mask
    ref = (ours_logp.detach() + 0.5 * torch.randn(ours_logp.shape, generator=g)) * mask
    advantages = torch.tensor([1.2, -0.4, 0.7, -1.5])

    inputs = {
        "prompt_ids": mb.input_ids[:, :6], "prompt_mask": mb.attention_mask[:, :6],
        "completion_ids": mb.completion_ids, "completion_mask": mb.completion_mask,
        "advantages": advantages, "old_per_token_logps": old, "ref_per_token_logps": ref,
    }
    theirs_logp, _, _ = trainer._get_per_token_logps_and_entropies(
        model, torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1),
        torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1), mb.completion_ids.shape[1])
    assert torch.allclose(ours_logp * mask, theirs_logp * mask, atol=1e-5)

    model.zero_grad()
    theirs = trainer._compute_loss(model, inputs)
    theirs.backward()
    theirs_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.zero_grad()
    ours_logp = completion_logprobs(model, mb, TEMPERATURE)
    ours = grpo_loss(logp=ours_logp, old_logp=old, advantages=advantages, mask=mask, clip_low=EPS, beta=BETA, ref_logp=ref)
    ours.loss.backward()
    assert 0 < ours.clip_low + ours.clip_high < 1  # the comparison covers clipped and unclipped tokens
    assert ours.kl > 0

    assert torch.allclose(ours.loss, theirs, atol=1e-6), (ours.loss.item(), theirs.item())
    assert theirs_grads
    for name, grad in theirs_grads.items():
        assert torch.allclose(dict(model.named_parameters())[name].grad, grad, atol=1e-6, rtol=1e-4), name
