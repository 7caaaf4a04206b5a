"""Tool-integrated trajectories in the learner: tool-output tokens are in the sequence (attended to)
but out of the policy loss, the KL, the entropy and PPO's GAE; the learner trains on exactly the
ids the sampler produced."""

import pytest
import torch

from reasoner import models
from reasoner.advantages import gae
from reasoner.batch import StepBatch, completion_logits, minibatch_plan, pack
from reasoner.loss import POLICY_LOSSES, token_entropy, token_logprobs
from reasoner.samplers import Completion

PROMPT = [10, 11, 12, 13]
# model: 20 21 22 | tool: 30 31 32 33 | model: 23 24 | tool: 34 | model: 25 (eos)
IDS = [20, 21, 22, 30, 31, 32, 33, 23, 24, 34, 25, 1]
MASK = [1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 1]


def _trajectory(logprob=-1.5):
    return Completion(IDS, [logprob if m else 0.0 for m in MASK], "model text", "stop", model_mask=MASK)


def test_pack_marks_model_tokens_only_and_keeps_every_id():
    plain = Completion([40, 41], [-1.0, -1.0], "", "stop")
    batch = StepBatch([PROMPT, [9]], [_trajectory(), plain], [True, True])
    [[mb]] = batch.micro_batches(minibatch_plan(2, 1, 2, "s"), pad_id=0, device="cpu")
    rows = {i: r for r, i in enumerate(mb.index.tolist())}
    row = rows[0]
    width_p = mb.input_ids.shape[1] - mb.completion_ids.shape[1]
    # the learner's input ids are exactly the prompt and the trajectory's ids, tool tokens included
    assert mb.input_ids[row, width_p - len(PROMPT):].tolist() == PROMPT + IDS
    assert mb.attention_mask[row, width_p - len(PROMPT):].tolist() == [1] * (len(PROMPT) + len(IDS))
    assert mb.completion_mask[row].tolist() == MASK
    assert mb.loss_mask[row].tolist() == MASK
    assert mb.sampler_logprobs[row].tolist() == [-1.5 if m else 0.0 for m in MASK]
    assert mb.completion_mask[rows[1]].tolist()[:2] == [1, 1] and sum(mb.completion_mask[rows[1]].tolist()) == 2


@pytest.mark.parametrize("loss_agg", list(POLICY_LOSSES))
def test_tool_positions_contribute_nothing_to_loss_kl_or_entropy(tiny_model, loss_agg):
    """The loss of a hand-built trajectory equals the loss over its model tokens alone, with the KL and the
    entropy bonus on; tool-output positions get no gradient and whatever is stored there does not matter."""
    model = models.load_model(str(tiny_model)).eval()
    ref = models.load_model(str(tiny_model)).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.01 * torch.randn_like(p))
    mb = pack([PROMPT], [IDS], 0, [0], [[(-1.5 if m else 0.0) for m in MASK]], [MASK])
    logits = completion_logits(model, mb)
    logp = token_logprobs(logits, mb.completion_ids, 0.7)
    ent = token_entropy(logits, 0.7)
    with torch.no_grad():
        ref_logp = token_logprobs(completion_logits(ref, mb), mb.completion_ids, 0.7)
    old = logp.detach() + 0.05
    kw = dict(advantages=torch.tensor([0.8]), clip_low=0.2, beta=0.1, entropy_coef=0.01, num_sequences=1,
              num_tokens=sum(MASK), max_tokens=16)
    full = POLICY_LOSSES[loss_agg](logp=logp, old_logp=old, mask=mb.loss_mask, ref_logp=ref_logp, entropy=ent, **kw)
    keep = torch.tensor(MASK, dtype=torch.bool)
    model_only = POLICY_LOSSES[loss_agg](logp=logp[:, keep], old_logp=old[:, keep], mask=torch.ones(1, sum(MASK)),
                                         ref_logp=ref_logp[:, keep], entropy=ent[:, keep], **kw)
    torch.testing.assert_close(full.loss, model_only.loss)
    torch.testing.assert_close(full.kl, model_only.kl)
    # garbage at tool positions (old, reference log-probs) changes nothing
    noisy_old, noisy_ref = old.clone(), ref_logp.clone()
    noisy_old[:, ~keep], noisy_ref[:, ~keep] = -50.0, 30.0
    noisy = POLICY_LOSSES[loss_agg](logp=logp, old_logp=noisy_old, mask=mb.loss_mask, ref_logp=noisy_ref, entropy=ent,
                                    **kw)
    torch.testing.assert_close(noisy.loss, full.loss)
    # no gradient flows from the tool positions' own log-probs or entropies
    logp.retain_grad()
    ent.retain_grad()
    full.loss.backward()
    assert torch.all(logp.grad[:, ~keep] == 0) and torch.all(ent.grad[:, ~keep] == 0)
    assert torch.any(logp.grad[:, keep] != 0)


def test_tool_tokens_are_attended_to(tiny_model):
    """The model token after a tool output is scored with the output in its context."""
    model = models.load_model(str(tiny_model)).eval()
    other = IDS[:3] + [35, 36, 37, 38] + IDS[7:]
    with torch.no_grad():
        a = completion_logits(model, pack([PROMPT], [IDS], 0, model_masks=[MASK]))
        b = completion_logits(model, pack([PROMPT], [other], 0, model_masks=[MASK]))
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)  # before the tool output: the same
    assert not torch.allclose(a[:, 7:], b[:, 7:], atol=1e-4)  # after it: it sees the output


def test_shared_prefix_layout_keeps_the_tool_mask(tiny_model):
    model = models.load_model(str(tiny_model)).eval()
    comps = [_trajectory(), Completion([40, 41, 1], [-1.0] * 3, "", "stop"), _trajectory(-0.5)]
    batch = StepBatch([PROMPT] * 3, comps, [True] * 3)
    plan = minibatch_plan(3, 1, 3, "s")
    out = {}
    for shared in (False, True):
        [[mb]] = batch.micro_batches(plan, 0, "cpu", shared_prefix=shared)
        with torch.no_grad():
            lp = token_logprobs(completion_logits(model, mb), mb.completion_ids, 1.0)
        out[shared] = (lp * mb.loss_mask, mb.loss_mask)
    torch.testing.assert_close(out[True][0], out[False][0], atol=1e-5, rtol=0)
    assert torch.equal(out[True][1], out[False][1])


def test_gae_skips_tool_positions():
    """GAE over a trajectory with tool outputs equals GAE over its model tokens alone."""
    torch.manual_seed(0)
    mask = torch.tensor([MASK + [0, 0]], dtype=torch.float32)  # two padding columns
    values = torch.randn(mask.shape)
    rewards = torch.zeros(mask.shape)
    rewards[0, len(MASK) - 1] = 1.0
    adv, ret = gae(rewards, values, mask, gamma=0.99, lam=0.9)
    keep = mask[0].bool()
    c_adv, c_ret = gae(rewards[:, keep], values[:, keep], torch.ones(1, int(keep.sum())), gamma=0.99, lam=0.9)
    torch.testing.assert_close(adv[:, keep], c_adv)
    torch.testing.assert_close(ret[:, keep], c_ret)
    assert torch.all(adv[:, ~keep] == 0) and torch.all(ret[:, ~keep] == 0)
