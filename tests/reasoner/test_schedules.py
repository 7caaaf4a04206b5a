"""Learning-rate schedules (by hand) and gradient checkpointing (same gradients, layers recomputed)."""

import dataclasses
import json
import math

import pytest
import torch
from click.testing import CliRunner

from reasoner import models
from reasoner.cli import main
from reasoner.config import TrainConfig
from reasoner.run import lr_factor


def test_lr_factor_by_hand():
    cfg = TrainConfig(steps=10, warmup_steps=2, lr_schedule="cosine")
    f = lr_factor(cfg)
    assert [f(0), f(1)] == [1 / 3, 2 / 3]  # warm-up: (s + 1) / (warmup + 1)
    assert f(2) == 1.0 and f(6) == pytest.approx(0.5) and f(10) == pytest.approx(0.0)
    assert f(4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))
    lin = lr_factor(dataclasses.replace(cfg, lr_schedule="linear"))
    assert lin(2) == 1.0 and lin(6) == pytest.approx(0.5) and lin(9) == pytest.approx(1 / 8)
    const = lr_factor(dataclasses.replace(cfg, lr_schedule="constant"))
    assert const(2) == const(9) == 1.0
    # two optimizer steps per training step (num_iterations=2): the schedule counts optimizer steps
    two = lr_factor(dataclasses.replace(cfg, lr_schedule="linear", num_iterations=2))
    assert two(4) == 1.0 and two(12) == pytest.approx(0.5)


def test_a_run_follows_its_schedule(tiny_model, digit_task, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--model", str(tiny_model), "--task", digit_task, "--steps", "4",
                                  "--lr-schedule", "linear", "--learning-rate", "1e-3", "--sampler", "hf",
                                  "--prompts-per-step", "2", "--group-size", "2", "--max-new-tokens", "4",
                                  "--eval-size", "0", "--output", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([7.5e-4, 5e-4, 2.5e-4, 0.0])  # "lr" is the rate after the step's update


def _grads_and_layer_calls(model, ids):
    calls = []
    hooks = [layer.register_forward_pre_hook(lambda *a: calls.append(1)) for layer in model.model.layers]
    model.zero_grad()
    logits = model(ids).logits
    torch.log_softmax(logits, -1)[..., 0].sum().backward()
    for h in hooks:
        h.remove()
    return {n: p.grad.clone() for n, p in model.named_parameters()}, len(calls)


def test_gradient_checkpointing_recomputes_layers_and_keeps_gradients(tiny_model):
    ids = torch.randint(0, 50, (2, 12))
    plain = models.load_model(str(tiny_model)).eval()
    grads, calls = _grads_and_layer_calls(plain, ids)
    ckpt = models.load_model(str(tiny_model))
    models.enable_gradient_checkpointing(ckpt)
    grads_ckpt, calls_ckpt = _grads_and_layer_calls(ckpt, ids)
    n_layers = len(plain.model.layers)
    assert calls == n_layers and calls_ckpt == 2 * n_layers  # each layer runs again in the backward pass
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-5, atol=1e-6)
    assert not any(m.training for m in ckpt.modules() if isinstance(m, torch.nn.Dropout))


def test_the_setting_reaches_the_policy(tiny_model, digit_task, tmp_path):
    from reasoner.config import from_dict
    from reasoner.run import setup

    for on in (False, True):
        cfg = from_dict(TrainConfig, {"model": str(tiny_model), "task": digit_task, "sampler": "hf", "eval_size": 0,
                                      "beta": 0, "gradient_checkpointing": on})
        run = setup(cfg, tmp_path / f"run-{on}", None)
        try:
            layer = run.bare_policy.model.layers[0]
            assert (layer.gradient_checkpointing and layer.training) == on
        finally:
            run.sampler.close()
            run.reward_pool.shutdown()
            run.rewarder.close()
