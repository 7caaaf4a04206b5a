"""The shared-prefix learner pass scores every completion token exactly as its own padded row does:
log-probs, gradients, critic values, and whole training steps."""

import json

import pytest
import torch
from click.testing import CliRunner

from reasoner import models
from reasoner.batch import StepBatch, completion_logprobs, minibatch_plan, shared_layout
from reasoner.cli import main
from reasoner.ppo import Critic
from reasoner.samplers import Completion


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, 60, (n,), generator=g).tolist() for n in (7, 4, 9)]
    seqs, comps = [], []
    for p in prompts:
        for n in (5, 1, 3, 8):  # a group of 4 with different lengths (one of a single token)
            seqs.append(p)
            ids = torch.randint(3, 60, (n,), generator=g).tolist()
            comps.append(Completion(text="", token_ids=ids, logprobs=[-1.0] * n, finish_reason="stop"))
    return StepBatch(seqs, comps, [True] * len(seqs))


def _micro(batch, shared, size=5):
    plan = minibatch_plan(len(batch), 1, size, "s")
    return batch.micro_batches(plan, 0, "cpu", shared_prefix=shared)[0]


@pytest.mark.parametrize("size", [4, 5, 12])
def test_log_probs_and_gradients_equal_the_padded_rows(tiny_model, size):
    model = models.load_model(str(tiny_model)).eval()
    batch = _batch()
    results = {}
    for shared in (False, True):
        model.zero_grad()
        logps = torch.zeros(len(batch), 8)
        total = 0.0
        for mb in _micro(batch, shared, size):
            lp = completion_logprobs(model, mb, temperature=0.7)
            logps[mb.index, :lp.shape[1]] = (lp * mb.completion_mask).detach()
            loss = (lp * mb.completion_mask).sum()
            loss.backward()
            total += loss.item()
        results[shared] = logps, {n: p.grad.clone() for n, p in model.named_parameters()}
    torch.testing.assert_close(results[True][0], results[False][0], atol=1e-5, rtol=0)
    for name, grad in results[False][1].items():
        torch.testing.assert_close(results[True][1][name], grad, atol=1e-5, rtol=1e-4)


def test_the_row_holds_each_prompt_once(tiny_model):
    batch = _batch()
    [padded], [shared] = _micro(batch, False, 12), _micro(batch, True, 12)
    assert padded.input_ids.numel() == 12 * (9 + 8)  # 12 rows of the longest prompt + completion
    assert shared.shared_ids.shape[1] == (7 + 4 + 9) + 3 * (5 + 1 + 3 + 8)  # 71 tokens instead of 204
    # a completion sees its own prompt and its own past, never another completion or prompt
    ids, mask, pos, score = shared_layout([[1, 2], [1, 2]], [[3, 4], [5]])
    assert ids.tolist() == [[1, 2, 3, 4, 5]] and pos.tolist() == [[0, 1, 2, 3, 2]]
    assert mask[0, 0].int().tolist() == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0],
                                        [1, 1, 0, 0, 1]]
    assert score.tolist() == [[1, 2], [1, 1]]


def test_a_wrong_mask_would_be_caught(tiny_model):
    """The equality above is not vacuous: letting completions see each other changes the log-probs."""
    model = models.load_model(str(tiny_model)).eval()
    batch = _batch()
    [shared], [padded] = _micro(batch, True, 12), _micro(batch, False, 12)
    leaky = shared.shared_mask.clone()
    leaky[0, 0] = torch.ones_like(leaky[0, 0]).tril()
    good = completion_logprobs(model, shared, 1.0)
    shared.shared_mask = leaky
    bad = completion_logprobs(model, shared, 1.0)
    m = padded.completion_mask.bool()
    assert (good - bad).abs()[m].max() > 1e-3


def test_critic_values_equal_the_padded_rows(tiny_model):
    critic = Critic.from_policy_weights(str(tiny_model), torch.float32, "cpu").eval()
    batch = _batch(1)
    values = {}
    for shared in (False, True):
        out = torch.zeros(len(batch), 8)
        for mb in _micro(batch, shared):
            v = critic(mb)
            out[mb.index, :v.shape[1]] = (v * mb.completion_mask).detach()
        values[shared] = out
    torch.testing.assert_close(values[True], values[False], atol=1e-5, rtol=0)


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_training_with_a_shared_prefix_ends_with_the_same_weights(tiny_model, digit_task, tmp_path, algorithm,
                                                                  monkeypatch):
    from safetensors.torch import load_file

    import reasoner.batch

    rows = []
    real = reasoner.batch.shared_layout
    monkeypatch.setattr(reasoner.batch, "shared_layout", lambda p, c: rows.append(len(p)) or real(p, c))
    weights = {}
    for flag in ("--no-shared-prefix", "--shared-prefix"):
        out = tmp_path / flag
        r = CliRunner().invoke(main, ["train", "--model", str(tiny_model), "--task", digit_task, "--steps", "2",
                                      "--algorithm", algorithm, "--critic", "shared", flag, "--sampler", "hf",
                                      "--prompts-per-step", "2", "--group-size", "4", "--max-new-tokens", "6",
                                      "--micro-batch-size", "4", "--learning-rate", "1e-3", "--eval-size", "0",
                                      "--output", str(out), "--quiet"])
        assert r.exit_code == 0, r.output
        weights[flag] = load_file(str(out / "checkpoints/step-000002/model.safetensors"))
        rewards = [json.loads(line)["reward/mean"] for line in (out / "metrics.jsonl").read_text().splitlines()]
        weights[flag + "rewards"] = rewards
    assert weights["--shared-prefixrewards"] == weights["--no-shared-prefixrewards"]  # the same samples
    assert rows and set(rows) == {4}  # only the --shared-prefix run packed shared rows: 8 sequences, 2 micro-batches
    for name, w in weights["--no-shared-prefix"].items():
        torch.testing.assert_close(weights["--shared-prefix"][name], w, atol=1e-5, rtol=1e-4)


def test_amp_bf16_runs_the_learner_under_autocast(tiny_model, digit_task, tmp_path, monkeypatch):
    import reasoner.grpo

    seen = []
    real = reasoner.grpo.completion_logits

    def spy(model, mb):
        out = real(model, mb)
        seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        return out

    monkeypatch.setattr(reasoner.grpo, "completion_logits", spy)
    for amp in ("none", "bf16"):
        r = CliRunner().invoke(main, ["train", "--model", str(tiny_model), "--task", digit_task, "--steps", "1",
                                      "--amp", amp, "--sampler", "hf", "--prompts-per-step", "2", "--group-size", "2",
                                      "--max-new-tokens", "4", "--eval-size", "0", "--output", str(tmp_path / amp),
                                      "--quiet"])
        assert r.exit_code == 0, r.output
    assert set(seen[:len(seen) // 2]) == {(False, torch.float32)}
    assert set(seen[len(seen) // 2:]) == {(True, torch.bfloat16)}
