"""Side by side: reasoner's math verifier vs math-verify on the labelled answer pairs.

    python bench/bench_math_verify.py                      # tests/verifiers/data/math_pairs.jsonl
    python bench/bench_math_verify.py --pairs tests/verifiers/data/math_adversarial.jsonl
    python bench/bench_math_verify.py --pairs FILE --repeat 5 --workers 2

Prints, as markdown: accuracy and false positives per category for both checkers, how often
they agree, every pair where they disagree with who is right by the label, and verifications
per second in one process and with a pool of worker processes. Both checkers see the same
strings; math-verify gets each side wrapped in ``\\boxed{}``, the form it is used with on
model replies. A row with a ``reply`` instead of an ``answer`` is a whole reply: ours extracts
its answer (default strategies), math-verify parses the reply as it is. Needs ``pip install math-verify`` (the project's ``dev`` extra).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def mv_check(pair: tuple[str, str, bool]) -> bool:
    """math-verify's judgement of one (answer or reply, reference) pair; any failure counts as not equal."""
    from math_verify import parse, verify
    answer, reference, is_reply = pair
    try:
        gold = parse("\\boxed{" + reference + "}")
        target = parse(answer if is_reply else "\\boxed{" + answer + "}")
        return bool(verify(gold, target))
    except Exception:  # noqa: BLE001 - a crash of the peer is its "not equal"
        return False


def _round(pairs, rep: int) -> list[tuple[str, str, bool]]:
    """The pairs with ``rep`` trailing spaces: the same answers, but no cache can serve a later round."""
    return [(a + " " * rep, r + " " * rep, is_reply) for a, r, is_reply in pairs]


def _ours(verifier, pairs) -> list[bool]:
    """Our decisions for one round: answers through ``check_batch``, replies through ``verify_batch``."""
    from types import SimpleNamespace
    out: list[bool] = [False] * len(pairs)
    plain = [k for k, p in enumerate(pairs) if not p[2]]
    replies = [k for k, p in enumerate(pairs) if p[2]]
    for k, v in zip(plain, verifier.check_batch([pairs[k][0] for k in plain], [pairs[k][1] for k in plain])):
        out[k] = v.ok
    examples = [SimpleNamespace(id=str(k), reference=pairs[k][1], meta={}) for k in replies]
    for k, v in zip(replies, verifier.verify_batch([pairs[k][0] for k in replies], examples)):
        out[k] = v.ok
    return out


def ours_single(pairs, repeat: int) -> tuple[list[bool], float]:
    from reasoner.verifiers.math_answer.verifier import MathVerifier
    verifier = MathVerifier(workers=0)
    start = time.perf_counter()
    for rep in range(repeat):
        decisions = [_ours(verifier, [p])[0] for p in _round(pairs, rep)]
    return decisions, len(pairs) * repeat / (time.perf_counter() - start)


def ours_pool(pairs, repeat: int, workers: int) -> tuple[list[bool], float, float]:
    from reasoner.verifiers.math_answer.verifier import MathVerifier
    with MathVerifier(workers=workers) as verifier:
        t0 = time.perf_counter()
        verifier.check("x+1", "1+x")  # start the pool
        startup = time.perf_counter() - t0
        start = time.perf_counter()
        for rep in range(repeat):
            decisions = _ours(verifier, _round(pairs, rep))
        rate = len(pairs) * repeat / (time.perf_counter() - start)
    return decisions, rate, startup


def latencies() -> dict[str, float]:
    """Median microseconds of one warm ``verify`` call: a plain number (in-process) and an expression (pool)."""
    from types import SimpleNamespace

    from reasoner.verifiers.math_answer.verifier import MathVerifier
    out = {}
    with MathVerifier() as verifier:
        verifier.check("x", "x + 0")  # start the pool
        for name, reply, ref in (("plain number, fast path", "so \\boxed{42.0}", "42"),
                                 ("expression, pool", "so \\boxed{\\frac{2x}{4}}", "x/2")):
            example = SimpleNamespace(id="0", reference=ref, meta={})
            times = []
            for k in range(300):
                start = time.perf_counter()
                verifier.verify(reply + " " * k, example)
                times.append(time.perf_counter() - start)
            out[name] = sorted(times)[len(times) // 2] * 1e6
    return out


def mv_single(pairs, repeat: int) -> tuple[list[bool], float]:
    start = time.perf_counter()
    for rep in range(repeat):
        decisions = [mv_check(p) for p in _round(pairs, rep)]
    return decisions, len(pairs) * repeat / (time.perf_counter() - start)


def mv_pool(pairs, repeat: int, workers: int) -> tuple[list[bool], float]:
    ctx = mp.get_context("forkserver")
    with ctx.Pool(workers) as pool:
        pool.map(mv_check, pairs[:8 * workers], chunksize=1)  # start every worker and its imports
        start = time.perf_counter()
        for rep in range(repeat):
            decisions = pool.map(mv_check, _round(pairs, rep), chunksize=8)
        rate = len(pairs) * repeat / (time.perf_counter() - start)
    return decisions, rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", default=str(ROOT / "tests/verifiers/data/math_pairs.jsonl"))
    ap.add_argument("--repeat", type=int, default=3, help="timed passes over the pairs")
    ap.add_argument("--workers", type=int, default=2, help="pool size for both checkers")
    args = ap.parse_args()
    rows = [json.loads(line) for line in open(args.pairs, encoding="utf-8") if line.strip()]
    pairs = [(r.get("answer", r.get("reply")), r["reference"], "reply" in r) for r in rows]

    ours, ours_rate1 = ours_single(pairs, args.repeat)
    ours_p, ours_rate_pool, startup = ours_pool(pairs, args.repeat, args.workers)
    theirs, mv_rate1 = mv_single(pairs, args.repeat)
    theirs_p, mv_rate_pool = mv_pool(pairs, args.repeat, args.workers)
    if ours_p != ours:
        print(f"warning: pool and single-process decisions differ on {sum(a != b for a, b in zip(ours, ours_p))} pairs")

    cats: dict[str, list] = defaultdict(lambda: [0, 0, 0, 0, 0])  # n, ours ok, mv ok, ours FP, mv FP
    for row, o, m in zip(rows, ours, theirs):
        c = cats[row["category"]]
        c[0] += 1
        c[1] += o == row["equivalent"]
        c[2] += m == row["equivalent"]
        c[3] += o and not row["equivalent"]
        c[4] += m and not row["equivalent"]
    total = [sum(c[i] for c in cats.values()) for i in range(5)]
    print(f"Labelled pairs: {len(rows)} ({sum(r['equivalent'] for r in rows)} equivalent), "
          f"{len(cats)} categories; {os.cpu_count()} CPUs\n")
    print("| category | pairs | ours | math-verify | ours FP | math-verify FP |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, c in sorted(cats.items()):
        print(f"| {name} | {c[0]} | {c[1] / c[0]:.1%} | {c[2] / c[0]:.1%} | {c[3]} | {c[4]} |")
    print(f"| **all** | {total[0]} | **{total[1] / total[0]:.1%}** | **{total[2] / total[0]:.1%}** | "
          f"**{total[3]}** | **{total[4]}** |\n")

    agree = sum(o == m for o, m in zip(ours, theirs))
    print(f"Agreement: {agree}/{len(rows)} ({agree / len(rows):.1%}).\n")
    print("| reference | answer | label | ours | math-verify | right |")
    print("|---|---|---|---|---|---|")
    for row, o, m in zip(rows, ours, theirs):
        if o != m:
            right = "ours" if o == row["equivalent"] else "math-verify"
            cell = lambda s: "`" + s.replace("|", "\\|").replace("\n", " ") + "`"
            print(f"| {cell(row['reference'])} | {cell(row.get('answer', row.get('reply')))} | {'equal' if row['equivalent'] else 'different'} "
                  f"| {'equal' if o else 'different'} | {'equal' if m else 'different'} | {right} |")
    print()
    print("| checker | verifications/s, one process | verifications/s, pool of "
          f"{args.workers} |")
    print("|---|---:|---:|")
    print(f"| ours | {ours_rate1:,.0f} | {ours_rate_pool:,.0f} |")
    print(f"| math-verify | {mv_rate1:,.0f} | {mv_rate_pool:,.0f} |")
    print(f"\nOur pool start-up (first check): {startup:.2f} s; {args.repeat} timed passes per cell.")
    for name, us in latencies().items():
        print(f"One warm `verify()` call, {name}: {us:,.0f} µs (median of 300).")


if __name__ == "__main__":
    main()
