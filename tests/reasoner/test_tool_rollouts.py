"""Multi-turn rollouts with the real transformers and vLLM samplers on the tiny model: the learner's
input ids are the sampler's ids, the sampler's log-probs of model tokens (drawn with tool output in
context) equal the learner's, budgets hold, groups stay groups."""

import pytest
import torch

from reasoner import models
from reasoner.batch import StepBatch, completion_logprobs, minibatch_plan
from reasoner.prompts import encode_prompts
from reasoner.samplers import SamplingParams
from reasoner.samplers.hf import HFSampler
from reasoner.samplers.multiturn import ToolSampler
from reasoner.tools import ToolCall, ToolResult


class EveryFewChars:
    """A tool a random model calls all the time: any 3 characters of new text are a call. Its output
    says how many calls this trajectory made before (its own state) and what the call was."""

    name = "few"
    stop = ()
    output_open, output_close = "<", ">"

    def __init__(self):
        self.histories = []

    def find(self, text):
        return ToolCall(text[:3], 3) if len(text) >= 3 else None

    def run_many(self, histories):
        self.histories += [list(h) for h in histories]
        return [ToolResult(f"{len(h) - 1}:{h[-1]}", error=False, seconds=0.0) for h in histories]

    def close(self):
        pass


def check_trajectories(sampler, tokenizer, model, prompts, groups, max_new_tokens, temperature, tol):
    assert [len(g) for g in groups] == [3] * len(prompts)
    flat_p = [p for p in prompts for _ in range(3)]
    flat = [c for g in groups for c in g]
    assert any(c.tool_calls for c in flat)
    for c in flat:
        mask = c.mask()
        assert len(mask) == len(c.token_ids) == len(c.logprobs)
        assert sum(mask) <= max_new_tokens and c.tool_calls <= sampler.max_tool_calls
        assert all(lp == 0.0 for lp, m in zip(c.logprobs, mask) if not m)
        # the judged text is the model's tokens only; the transcript is every token
        assert c.text == "".join(tokenizer.decode([t], skip_special_tokens=True) for t, m in zip(c.token_ids, mask) if m)
        assert c.transcript == tokenizer.decode(c.token_ids, skip_special_tokens=True)
    batch = StepBatch(flat_p, flat, [True] * len(flat))
    [mbs] = batch.micro_batches(minibatch_plan(len(flat), 1, len(flat), "s"), sampler.pad_id, "cpu")
    for mb in mbs:
        with torch.no_grad():
            logp = completion_logprobs(model, mb, temperature)
        width_p = mb.input_ids.shape[1] - mb.completion_ids.shape[1]
        for row, i in enumerate(mb.index.tolist()):
            ids = flat_p[i] + flat[i].token_ids
            assert mb.input_ids[row, width_p - len(flat_p[i]):width_p + len(flat[i].token_ids)].tolist() == ids
            keep = mb.completion_mask[row].bool()
            assert keep.sum().item() == flat[i].model_tokens
            gap = (logp[row][keep] - mb.sampler_logprobs[row][keep]).abs().max().item()
            assert gap < tol, (i, gap)


@pytest.mark.parametrize("seeded", [False, True])
def test_hf_sampler_multi_turn(tiny_model, seeded):
    tokenizer = models.load_tokenizer(str(tiny_model))
    model = models.load_model(str(tiny_model)).eval()
    tool = EveryFewChars()
    sampler = ToolSampler(HFSampler(model, tokenizer), tokenizer, [tool], max_tool_calls=2, tool_output_tokens=4)
    prompts = encode_prompts(tokenizer, ["what is 1+1?", "hi"])
    params = SamplingParams(max_new_tokens=12, temperature=0.8, seed=0,
                            prompt_seeds=(11, 12) if seeded else None)
    groups = sampler.generate(prompts, 3, params)
    check_trajectories(sampler, tokenizer, model, prompts, groups, 12, 0.8, 1e-4)
    # each trajectory's calls carry its own earlier calls, nobody else's
    for h in tool.histories:
        assert len(h) <= 2
    outputs = [c.transcript for g in groups for c in g if c.tool_calls == 2]
    assert outputs and all("<0:" in t and "<1:" in t for t in outputs)
    if seeded:  # per-prompt seeds: a group depends on its prompt and seed only
        again = sampler.generate(prompts[:1], 3, SamplingParams(max_new_tokens=12, temperature=0.8, prompt_seeds=(11,)))
        assert [c.token_ids for c in again[0]] == [c.token_ids for c in groups[0]]


def test_budget_of_model_tokens_and_output_truncation(tiny_model):
    tokenizer = models.load_tokenizer(str(tiny_model))
    model = models.load_model(str(tiny_model)).eval()

    class Loud(EveryFewChars):
        def run_many(self, histories):
            return [ToolResult("9" * 5000, error=True, seconds=0.1) for _ in histories]

    sampler = ToolSampler(HFSampler(model, tokenizer), tokenizer, [Loud()], max_tool_calls=5, tool_output_tokens=6)
    prompts = encode_prompts(tokenizer, ["a", "b"])
    groups = sampler.generate(prompts, 3, SamplingParams(max_new_tokens=10, temperature=1.0, seed=1))
    for c in [c for g in groups for c in g]:
        assert c.model_tokens <= 10
        tool_tokens = len(c.token_ids) - c.model_tokens
        assert c.tool_calls <= 3  # a call every 3 model tokens, none run with no budget left after it
        assert c.tool_errors == c.tool_calls
        if c.tool_calls:
            assert "9" * 7 not in c.transcript and "truncated" in c.transcript
            # per output: "\n<" + 6 body tokens + the truncation note + ">"
            assert tool_tokens <= c.tool_calls * (6 + 3 + len(tokenizer("\n[... output truncated]\n")["input_ids"]))


def test_vllm_sampler_multi_turn(tiny_model):
    pytest.importorskip("vllm")
    from reasoner.samplers.vllm import VLLMSampler

    tokenizer = models.load_tokenizer(str(tiny_model))
    model = models.load_model(str(tiny_model)).eval()
    engine = VLLMSampler(str(tiny_model), tokenizer, max_model_len=256, kv_cache_gib=1, seed=0)
    try:
        sampler = ToolSampler(engine, tokenizer, [EveryFewChars()], max_tool_calls=2, tool_output_tokens=4)
        prompts = encode_prompts(tokenizer, ["what is 1+1?", "hi"])
        groups = sampler.generate(prompts, 3, SamplingParams(max_new_tokens=12, temperature=0.8, seed=0))
        check_trajectories(sampler, tokenizer, model, prompts, groups, 12, 0.8, 1e-3)
    finally:
        engine.close()


def _check_stop_strings(tokenizer, groups, stop):
    stopped = [c for g in groups for c in g if c.finish_reason == "stop_string"]
    assert stopped
    for c in stopped:  # the last token completes the first stop string; nothing after it is kept
        assert any(s in tokenizer.decode(c.token_ids) for s in stop)
        assert not any(s in tokenizer.decode(c.token_ids[:-1]) for s in stop)
        assert len(c.logprobs) == len(c.token_ids)


STOP = tuple("0123456789")


def test_hf_sampler_stops_at_stop_strings(tiny_model):
    tokenizer = models.load_tokenizer(str(tiny_model))
    model = models.load_model(str(tiny_model)).eval()
    groups = HFSampler(model, tokenizer).generate(encode_prompts(tokenizer, ["a", "b"]), 4,
                                                  SamplingParams(max_new_tokens=16, temperature=1.0, seed=0, stop=STOP))
    _check_stop_strings(tokenizer, groups, STOP)


def test_vllm_sampler_stops_at_stop_strings(tiny_model):
    pytest.importorskip("vllm")
    from reasoner.samplers.vllm import VLLMSampler

    tokenizer = models.load_tokenizer(str(tiny_model))
    engine = VLLMSampler(str(tiny_model), tokenizer, max_model_len=256, kv_cache_gib=1, seed=0)
    try:
        groups = engine.generate(encode_prompts(tokenizer, ["a", "b"]), 4,
                                 SamplingParams(max_new_tokens=16, temperature=1.0, seed=0, stop=STOP))
        _check_stop_strings(tokenizer, groups, STOP)
    finally:
        engine.close()
