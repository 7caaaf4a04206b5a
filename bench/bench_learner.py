"""The learner's passes, side by side: padded rows vs the shared-prefix row, fp32 vs bf16 autocast,
and the achieved FLOP/s beside the machine's measured matmul peak.

    .venv/bin/python bench/bench_learner.py                      # SmolLM2-135M, 4 prompts x G=8
    .venv/bin/python bench/bench_learner.py --prompt-tokens 200  # a longer prompt (few-shot, tools)

One "learner step" here is what a GRPO step does per micro-batch with beta > 0: a reference
forward (no grad), then the policy forward and backward of a token-mean loss over the completion
tokens. Prompts and completion lengths are drawn like the default run's (prompt ~55 tokens with
the chat template, completions 20-50 tokens). Every configuration sees the same sequences;
the table gives the median of --repeats timed runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reasoner.threads import pin_openmp_threads  # noqa: E402

pin_openmp_threads()

import torch  # noqa: E402


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a square matmul at ``dtype``: the practical ceiling of this machine's learner."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=55)
    ap.add_argument("--micro-batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from reasoner import models
    from reasoner.batch import StepBatch, completion_logprobs, minibatch_plan
    from reasoner.samplers import Completion

    path = models.resolve(args.model)
    policy = models.load_model(path).eval()
    reference = models.load_model(path).eval().requires_grad_(False)
    cfg = policy.config
    params = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    g = torch.Generator().manual_seed(0)
    seqs, comps = [], []
    for _ in range(args.prompts):
        prompt = torch.randint(10, cfg.vocab_size, (args.prompt_tokens,), generator=g).tolist()
        for _ in range(args.group_size):
            n = int(torch.randint(20, 51, (1,), generator=g))
            ids = torch.randint(10, cfg.vocab_size, (n,), generator=g).tolist()
            seqs.append(prompt)
            comps.append(Completion(text="", token_ids=ids, logprobs=[0.0] * n, finish_reason="stop"))
    batch = StepBatch(seqs, comps, [True] * len(seqs))
    plan = minibatch_plan(len(batch), 1, args.micro_batch_size, "bench")
    completion_tokens = sum(len(c.token_ids) for c in comps)

    def step(micro, amp):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext()
        policy.zero_grad(set_to_none=True)
        for mb in micro:
            with torch.no_grad(), ctx:
                completion_logprobs(reference, mb, 1.0)
            with ctx:
                lp = completion_logprobs(policy, mb, 1.0)
            ((lp.float() * mb.completion_mask).sum() / completion_tokens).backward()

    rows = []
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    for shared in (False, True):
        micro = batch.micro_batches(plan, 0, "cpu", shared_prefix=shared)[0]
        tokens = sum((mb.shared_ids if shared else mb.input_ids).numel() for mb in micro)
        real = sum(int(mb.attention_mask.sum()) for mb in batch.micro_batches(plan, 0, "cpu")[0]) \
            if not shared else tokens
        for amp in (False, True):
            step(micro, amp)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                step(micro, amp)
                times.append(time.perf_counter() - t0)
            sec = statistics.median(times)
            # 2 FLOP per parameter per token forward, 4 more backward; the reference pass forward only
            flops = (2 * params * real) * 2 + 4 * params * real
            rows.append((("shared prefix" if shared else "padded rows"), "bf16 autocast" if amp else "fp32", tokens,
                         real, sec, flops / sec, flops / sec / peaks["bf16" if amp else "fp32"]))
    base = rows[0][4]
    print(f"{args.model}: {args.prompts} prompts x G={args.group_size}, prompt {args.prompt_tokens} tokens, "
          f"{completion_tokens} completion tokens, micro-batch {args.micro_batch_size}, "
          f"{torch.get_num_threads()} threads")
    print(f"matmul peak: fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s")
    print("| layout | precision | tokens in | real tokens | s / learner step | speed-up | GFLOP/s | of peak |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for layout, prec, tokens, real, sec, fl, frac in rows:
        print(f"| {layout} | {prec} | {tokens} | {real} | {sec:.2f} | {base / sec:.2f}x | {fl / 1e9:.0f} | "
              f"{100 * frac:.0f}% |")


if __name__ == "__main__":
    main()
