"""Evaluation throughput and accuracy on GSM8K with SmolLM2-135M-Instruct; prints Markdown tables.

    python bench/eval_bench.py                       # both runs below (about an hour on 2 CPU cores)
    python bench/eval_bench.py --run sampled --limit 100

* ``sampled``: k = 4 samples per problem (temperature 0.6, top-p 0.95), 512 new tokens, the
  vLLM sampler; problems/s is end to end (generation and scoring), as ``reasoner eval`` runs it.
* ``greedy``: zero-shot greedy pass@1 on the whole GSM8K test set (1319 problems), the number
  to set beside the model's published score.

Both go through ``reasoner.evaluate.run`` (the code behind ``reasoner eval``). Each completion
is also judged by math-verify (the checker of open-r1 and lighteval), when installed, on the
same reply and reference, and the agreement of the two checkers is reported. The load average
before and after each run is printed: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = {
    "sampled": dict(samples=4, temperature=0.6, top_p=0.95, limit=200),
    "greedy": dict(samples=1, temperature=0.0, top_p=1.0, limit=0),
}


def math_verify_agreement(records: list[dict]) -> tuple[float, int] | None:
    """Share of completions on which math-verify and the math verifier agree, and the count that disagree."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    same = total = 0
    for r in records:
        gold = parse(f"${r['reference']}$")
        for c in r["completions"]:
            try:
                theirs = bool(verify(gold, parse(c["text"])))
            except Exception:  # noqa: BLE001 - a math-verify failure counts as its "wrong"
                theirs = False
            same += theirs == c["correct"]
            total += 1
    return same / total, total - same


def lenient_accuracy(records: list[dict]) -> float:
    """pass@1 of the same completions when a reply's last number also counts as its answer.

    That is the fallback of lm-eval's GSM8K "flexible-extract"; ``reasoner eval`` does not use it
    (a reply must state its answer), so the difference shows what the stricter reading costs.
    """
    from types import SimpleNamespace

    from reasoner.verifiers.math_answer import MathVerifier

    lenient = MathVerifier(strategies=("boxed", "hash", "answer_is", "last_number"))
    right = []
    for r in records:
        example = SimpleNamespace(id=r["id"], reference=r["reference"], meta={})
        right.append(sum(lenient.verify(c["text"], example).ok for c in r["completions"]) / r["samples"])
    lenient.close()
    return sum(right) / len(right)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", choices=[*RUNS, "all"], default="all")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gsm8k_test.jsonl"))
    parser.add_argument("--limit", type=int, default=None, help="override the run's problem count")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--sampler", default="vllm")
    parser.add_argument("--output", default="bench/out/eval", help="where each run's summary and completions go")
    parser.add_argument("--rescore", metavar="DIR", help="only re-score the completions saved in DIR/gsm8k.jsonl")
    args = parser.parse_args()
    if args.rescore:
        records = [json.loads(line) for line in (Path(args.rescore) / "gsm8k.jsonl").read_text().splitlines()]
        agreement = math_verify_agreement(records)
        agree = "n/a" if agreement is None else f"{100 * agreement[0]:.2f}% ({agreement[1]} differ)"
        print(f"{args.rescore}: last-number fallback pass@1 {100 * lenient_accuracy(records):.2f}%; "
              f"math-verify agreement {agree}")
        return

    from reasoner.eval_config import EvalConfig
    from reasoner.evaluate import run

    rows = []
    for name in (RUNS if args.run == "all" else [args.run]):
        settings = dict(RUNS[name])
        if args.limit is not None:
            settings["limit"] = args.limit
        cfg = EvalConfig(model=args.model, tasks=(f"gsm8k:{args.data}",), max_new_tokens=args.max_tokens,
                         sampler=args.sampler, output=str(Path(args.output) / name), **settings)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        summary = run(cfg, show_progress=True)
        wall = time.perf_counter() - start
        m = summary["tasks"]["gsm8k"]
        records = [json.loads(line) for line in (Path(cfg.output) / "gsm8k.jsonl").read_text().splitlines()]
        agreement = math_verify_agreement(records)
        lenient = lenient_accuracy(records)
        rows.append({
            "run": name, "problems": m["problems"], "k": m["samples"], "T": cfg.temperature,
            "wall_s": wall, "generate_s": m["seconds"]["generate"], "score_s": m["seconds"]["score"],
            "problems_per_s": m["problems"] / wall, "problems_per_s_gen_score": m["problems_per_s"],
            "tokens_per_s": m["tokens_per_s"], "tokens_mean": m["tokens_mean"], "truncated": m["truncated"],
            "pass@1": m["pass@k"][1], "stderr": m["pass@1_stderr"], "pass@k": m["pass@k"][m["samples"]],
            "maj@k": m["maj@k"][m["samples"]], "answered": m["answered"], "agreement": agreement, "lenient": lenient,
            "load": (load_before, os.getloadavg()[0]),
        })

    print("\n| run | problems | k | T | wall (s) | problems/s (wall) | problems/s (generate+score) | "
          "tokens/s | tokens/completion | truncated | load avg before/after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['run']} | {r['problems']} | {r['k']} | {r['T']:g} | {r['wall_s']:.0f} | {r['problems_per_s']:.3f} | "
              f"{r['problems_per_s_gen_score']:.3f} | {r['tokens_per_s']:.0f} | {r['tokens_mean']:.0f} | "
              f"{100 * r['truncated']:.0f}% | {r['load'][0]:.1f} / {r['load'][1]:.1f} |")
    print("\n| run | pass@1 | ± stderr | pass@k | maj@k | answered | pass@1, last-number fallback | "
          "agreement with math-verify |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        agree = "n/a" if r["agreement"] is None else f"{100 * r['agreement'][0]:.2f}% ({r['agreement'][1]} differ)"
        print(f"| {r['run']} | {100 * r['pass@1']:.2f}% | {100 * r['stderr']:.2f} | {100 * r['pass@k']:.2f}% | "
              f"{100 * r['maj@k']:.2f}% | {100 * r['answered']:.1f}% | {100 * r['lenient']:.2f}% | {agree} |")


if __name__ == "__main__":
    main()
