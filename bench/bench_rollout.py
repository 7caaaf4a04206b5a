"""Rollout throughput and GRPO step time: vLLM (in process and as a server) vs transformers
generate, side by side.

    .venv/bin/python bench/bench_rollout.py            # 16 prompts x G=8, 128 new tokens, SmolLM2-135M
    .venv/bin/python bench/bench_rollout.py --steps 4  # more GRPO steps per sampler
    .venv/bin/python bench/bench_rollout.py --samplers hf,vllm

Part 1 samples the same prompts with each sampler (temperature 1, stop at end-of-sequence),
twice each, and reports generated tokens/s of the warm call. Part 2 times the weight sync
into each vLLM sampler. Part 3 runs short GRPO trainings with each sampler (the default run's
settings) and reports the mean seconds per step and its split, leaving out the first step (warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import fmean

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reasoner.threads import pin_openmp_threads  # noqa: E402

pin_openmp_threads()  # as the CLI does, before torch loads

import torch  # noqa: E402


def sample_throughput(sampler, prompts, group, max_new_tokens):
    from reasoner.samplers import SamplingParams

    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=1.0)
    rows = []
    for attempt in ("cold", "warm"):
        start = time.perf_counter()
        groups = sampler.generate(prompts, group, params)
        seconds = time.perf_counter() - start
        tokens = sum(len(c.token_ids) for g in groups for c in g)
        rows.append((attempt, seconds, tokens))
    return rows


def grpo_steps(sampler: str, steps: int, out: Path) -> dict:
    """A short default-settings training with this sampler, in its own process (as a user runs it)."""
    import subprocess

    run = out / sampler
    argv = [sys.executable, "-c", "from reasoner.cli import main; main()", "train", "--sampler", sampler,
            "--steps", str(steps), "--eval-size", "0", "--output", str(run), "--seed", "0", "--quiet"]
    # as from a fresh shell: this process pinned its OpenMP threads, which bound its main thread
    # (and what it starts) to one core
    subprocess.run(argv, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   preexec_fn=lambda: os.sched_setaffinity(0, range(os.cpu_count() or 1)))
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    warm = metrics[1:] or metrics
    keys = ("time/generate", "time/verify", "time/learn", "time/weight_sync", "time/step", "completion/len_mean")
    return {k: fmean(m[k] for m in warm) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps per sampler in part 3 (0 skips it)")
    ap.add_argument("--samplers", default="hf,vllm,vllm-server", help="comma-separated, hf first (the baseline)")
    ap.add_argument("--steps-only", action="store_true", help="part 3 only")
    args = ap.parse_args()
    names = args.samplers.split(",")

    from reasoner import tasks
    from reasoner import models
    from reasoner.prompts import encode_prompts
    from reasoner.samplers.hf import HFSampler
    from reasoner.samplers.vllm import VLLMSampler
    from reasoner.samplers.vllm_server import VLLMServerSampler

    path = models.resolve("smollm2-135m")
    tokenizer = models.load_tokenizer(path)
    examples = list(tasks.load("arithmetic"))[: args.prompts]
    prompts = encode_prompts(tokenizer, [ex.prompt for ex in examples])
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"workload: {len(prompts)} prompts x G={args.group}, up to {args.max_new_tokens} new tokens, T=1.0\n")

    if args.steps_only:
        steps_table(names, args.steps)
        return
    policy = models.load_model(path).eval()
    results, starts, syncs = {}, {}, {}
    for name in names:
        start = time.perf_counter()
        if name == "hf":
            sampler = HFSampler(policy, tokenizer)
        elif name == "vllm":
            sampler = VLLMSampler(path, tokenizer, max_model_len=512)
        else:
            sampler = VLLMServerSampler(path, tokenizer, max_model_len=512)
        starts[name] = time.perf_counter() - start
        results[name] = sample_throughput(sampler, prompts, args.group, args.max_new_tokens)
        if name != "hf":
            syncs[name] = []
            for _ in range(3):
                sampler.load_weights(policy.named_parameters())
                syncs[name].append(sampler.sync_seconds)
        sampler.close()

    print("| sampler | call | seconds | generated tokens | tokens/s |")
    print("|---|---|---:|---:|---:|")
    for name, rows in results.items():
        for attempt, seconds, tokens in rows:
            print(f"| {name} | {attempt} | {seconds:.1f} | {tokens} | {tokens / seconds:.0f} |")
    warm = {name: rows[-1][2] / rows[-1][1] for name, rows in results.items()}
    for name in names[1:]:
        print(f"\n{name} / {names[0]} (warm): {warm[name] / warm[names[0]]:.2f}x; start {starts[name]:.1f} s")
    n_params = sum(p.numel() for p in policy.parameters())
    for name, times in syncs.items():
        print(f"weight sync into {name} ({n_params / 1e6:.1f} M parameters, fp32): "
              f"{fmean(times):.2f} s mean of 3 ({min(times):.2f}-{max(times):.2f})")
    del policy

    if args.steps:
        steps_table(names, args.steps)


def steps_table(names: list[str], steps: int) -> None:
    print(f"\nGRPO step (default run settings: 8 prompts x G=8, 32 new tokens), each sampler in its own "
          f"`reasoner train` process, mean of steps 2..{steps}:\n")
    print("| sampler | generate | verify | learn | weight sync | step | mean completion tokens |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            t = grpo_steps(name, steps, Path(tmp))
            print(f"| {name} | {t['time/generate']:.1f} | {t['time/verify']:.2f} | {t['time/learn']:.1f} | "
                  f"{t['time/weight_sync']:.2f} | {t['time/step']:.1f} | {t['completion/len_mean']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
