"""reasoner train beside TRL's GRPOTrainer on TRL's baseline config, each in its own process.

    .venv/bin/python bench/bench_trl.py                 # TRL, reasoner (hf), reasoner (vllm), + shared prefix
    .venv/bin/python bench/bench_trl.py --steps 4 --only reasoner-hf,trl

The config (both sides): SmolLM2-135M-Instruct fp32, 4 prompts x G=8 per step, <= 64 new tokens,
temperature 1, beta 0.04, token-mean loss, one optimizer step per generation, the same prompts
(the arithmetic task's, with the chat template), the same reward (reasoner's math verifier).
Reported: median seconds per step over steps 2.. (the first warms up), generation seconds where
the trainer reports them, peak RSS of the trainer's process and its children, and the ratio of
each step time to TRL's.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CONFIG = {"prompts": 4, "group": 8, "max_new_tokens": 64, "temperature": 1.0, "beta": 0.04, "lr": 1e-6}


def run_trl(steps: int, out: Path) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from reasoner import models, tasks
    from reasoner.verifiers import get

    path = models.resolve("smollm2-135m")
    examples = list(tasks.load("arithmetic"))[:CONFIG["prompts"] * steps]
    data = datasets.Dataset.from_list([{"prompt": [{"role": "user", "content": ex.prompt}],
                                        "reference": str(ex.reference)} for ex in examples])
    math = get("math")

    def reward(completions, reference, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        judged = [SimpleNamespace(id=str(i), reference=r, meta={}) for i, r in enumerate(reference)]
        return [v.reward for v in math.verify_batch(texts, judged)]

    times = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)

    args = GRPOConfig(output_dir=str(out), per_device_train_batch_size=CONFIG["prompts"] * CONFIG["group"],
                      num_generations=CONFIG["group"], max_completion_length=CONFIG["max_new_tokens"],
                      temperature=CONFIG["temperature"], beta=CONFIG["beta"], loss_type="bnpo",
                      learning_rate=CONFIG["lr"], max_steps=steps, use_cpu=True, bf16=False, report_to=[],
                      logging_steps=1, save_strategy="no", shuffle_dataset=False)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data,
                          processing_class=AutoTokenizer.from_pretrained(path), callbacks=[Clock()])
    trainer.train()
    math.close()
    return {"step_seconds": times, "generate_seconds": None}


def run_reasoner(steps: int, out: Path, sampler: str, extra: list[str]) -> dict:
    cmd = [PYTHON, "-m", "reasoner.cli", "train", "--model", "smollm2-135m", "--task", "arithmetic",
           "--prompts-per-step", str(CONFIG["prompts"]), "--group-size", str(CONFIG["group"]),
           "--max-new-tokens", str(CONFIG["max_new_tokens"]), "--temperature", str(CONFIG["temperature"]),
           "--beta", str(CONFIG["beta"]), "--loss-agg", "token-mean", "--learning-rate", str(CONFIG["lr"]),
           "--steps", str(steps), "--eval-size", "0", "--save-every", "0", "--sampler", sampler,
           "--output", str(out), "--quiet", *extra]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "time/step" in line]
    return {"step_seconds": [m["time/step"] for m in metrics], "generate_seconds": [m["time/generate"] for m in metrics]}


RUNS = {
    "trl": ("TRL 1.16 GRPOTrainer (transformers generate)", None, []),
    "reasoner-hf": ("reasoner train --sampler hf --no-shared-prefix", "hf", ["--no-shared-prefix"]),
    "reasoner-hf-shared": ("reasoner train --sampler hf (shared prefix)", "hf", ["--shared-prefix"]),
    "reasoner-vllm": ("reasoner train --sampler vllm --no-shared-prefix", "vllm", ["--no-shared-prefix"]),
    "reasoner-vllm-shared": ("reasoner train --sampler vllm (shared prefix, the default)", "vllm", ["--shared-prefix"]),
}


def one(name: str, steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        label, sampler, extra = RUNS[name]
        result = run_trl(steps, Path(tmp)) if sampler is None else run_reasoner(steps, Path(tmp) / "run", sampler, extra)
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({**result, "peak_rss_gib": rss / 2 ** 20}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--only", default=",".join(RUNS))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args.one, args.steps)
    rows = []
    for name in args.only.split(","):
        t0 = time.perf_counter()
        out = subprocess.run([PYTHON, __file__, "--one", name, "--steps", str(args.steps)], capture_output=True,
                             text=True, cwd=ROOT)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-3000:]}", file=sys.stderr)
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        step = statistics.median(r["step_seconds"][1:] or r["step_seconds"])
        gen = statistics.median(r["generate_seconds"][1:] or r["generate_seconds"]) if r["generate_seconds"] else None
        rows.append((name, step, gen, r["peak_rss_gib"], time.perf_counter() - t0))
    trl = next((r[1] for r in rows if r[0] == "trl"), None)
    print(f"{args.steps} steps each; median s/step of steps 2-{args.steps}")
    print("| trainer | s/step | generation s | peak RSS GiB | step / TRL |")
    print("|---|---:|---:|---:|---:|")
    for name, step, gen, rss, _ in rows:
        ratio = f"{step / trl:.2f}" if trl else "–"
        print(f"| {RUNS[name][0]} | {step:.1f} | {'–' if gen is None else f'{gen:.1f}'} | {rss:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
