"""Packing and scoring: padding must not change a sequence's log-probs, and the learner must
score tokens exactly as the sampler drew them."""

import pytest
import torch

from reasoner import models
from reasoner.batch import StepBatch, completion_logprobs, minibatch_plan, pack
from reasoner.prompts import encode_prompts
from reasoner.samplers import Completion, SamplingParams
from reasoner.samplers.hf import HFSampler


def test_pack_layout():
    mb = pack([[5, 6, 7], [8]], [[1, 2], [3, 4, 9]], pad_id=0)
    assert mb.input_ids.tolist() == [[5, 6, 7, 1, 2, 0], [0, 0, 8, 3, 4, 9]]
    assert mb.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert mb.position_ids.tolist()[1][2:] == [0, 1, 2, 3]
    assert mb.completion_ids.tolist() == [[1, 2, 0], [3, 4, 9]]
    assert mb.completion_mask.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_micro_batches_cover_every_sequence_once():
    prompts = [[1] * n for n in (3, 9, 1, 4, 2)]
    comps = [[2] * n for n in (5, 1, 2, 8, 3)]
    batch = StepBatch(prompts, [Completion(c, [-1.0] * len(c), "", "stop") for c in comps], [True] * 5)
    mbs = [mb for mbs in batch.micro_batches(minibatch_plan(5, 2, 2, "s"), pad_id=0, device="cpu") for mb in mbs]
    assert sorted(i for mb in mbs for i in mb.index.tolist()) == [0, 1, 2, 3, 4]
    assert all(len(mb.index) <= 2 for mb in mbs)
    for mb in mbs:  # each row holds its own sequence, sampler log-probs included
        for row, i in enumerate(mb.index.tolist()):
            n = len(comps[i])
            assert mb.completion_ids[row, :n].tolist() == comps[i]
            assert mb.sampler_logprobs[row, :n].tolist() == [-1.0] * n


def test_padding_does_not_change_logprobs(tiny_model):
    model = models.load_model(str(tiny_model)).eval()
    short, long = [10, 11, 12], [13, 14, 15, 16, 17, 18, 19]
    comp_a, comp_b = [20, 21, 22, 23], [24, 25]
    with torch.no_grad():
        alone = completion_logprobs(model, pack([short], [comp_a], 0), 1.0)
        together = completion_logprobs(model, pack([short, long], [comp_a, comp_b], 0), 1.0)
    assert torch.allclose(alone[0], together[0, :4], atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampler_logprobs_match_learner(tiny_model, temperature):
    tokenizer = models.load_tokenizer(str(tiny_model))
    model = models.load_model(str(tiny_model)).eval()
    sampler = HFSampler(model, tokenizer)
    prompts = encode_prompts(tokenizer, ["what is 1+1?", "hi"])
    groups = sampler.generate(prompts, 3, SamplingParams(max_new_tokens=12, temperature=temperature, seed=0))
    assert [len(g) for g in groups] == [3, 3]
    flat_p = [p for p in prompts for _ in range(3)]
    flat_c = [c for g in groups for c in g]
    mb = pack(flat_p, [c.token_ids for c in flat_c], tokenizer.pad_token_id)
    with torch.no_grad():
        logp = completion_logprobs(model, mb, temperature)
    for row, c in enumerate(flat_c):
        assert len(c.token_ids) == len(c.logprobs) >= 1
        assert c.finish_reason in ("stop", "length")
        assert logp[row, :len(c.logprobs)].tolist() == pytest.approx(c.logprobs, abs=1e-4)


def test_same_seed_same_samples(tiny_model):
    tokenizer = models.load_tokenizer(str(tiny_model))
    sampler = HFSampler(models.load_model(str(tiny_model)), tokenizer)
    prompts = encode_prompts(tokenizer, ["abc"])
    params = SamplingParams(max_new_tokens=10, temperature=1.0, seed=123)
    first = [c.token_ids for c in sampler.generate(prompts, 4, params)[0]]
    second = [c.token_ids for c in sampler.generate(prompts, 4, params)[0]]
    assert first == second
    assert len({tuple(t) for t in first}) > 1  # a random model at T=1 gives distinct samples


def test_greedy_stops_at_eos_or_length(tiny_model):
    tokenizer = models.load_tokenizer(str(tiny_model))
    sampler = HFSampler(models.load_model(str(tiny_model)), tokenizer)
    [[c]] = sampler.generate(encode_prompts(tokenizer, ["x"]), 1, SamplingParams(max_new_tokens=5, temperature=0))
    if c.finish_reason == "length":
        assert len(c.token_ids) == 5
    else:
        assert c.token_ids[-1] == tokenizer.eos_token_id
