"""Scores of an evaluation: judge completions, then pass@k, maj@k and the paired bootstrap.

Everything here works on completions already generated, so the exact code that scores a model
also scores reference solutions in the tests. No torch.

* ``pass@k`` — the unbiased estimator of Chen et al. 2021 (https://arxiv.org/abs/2107.03374,
  eq. 1): with ``n`` samples of which ``c`` are correct, the probability that at least one of
  ``k`` samples drawn without replacement is correct, ``1 - C(n-c, k) / C(n, k)``.
* ``maj@k`` — majority vote (self-consistency, Wang et al. 2022) over the answers extracted
  from the first ``k`` samples; the vote is right when the winning answer was judged correct.
* ``paired_bootstrap`` — the difference of two runs on the same problems with a confidence
  interval from resampling problems (Efron & Tibshirani 1993; Koehn 2004 for NLP evaluation).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from fractions import Fraction
from statistics import fmean, stdev
from typing import Any, Sequence

from reasoner.rewards import TASK


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k: ``1 - C(n-c, k) / C(n, k)`` computed as ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``.

    The product form never builds the binomials (which overflow floats for n in the hundreds).
    Example: n=4, c=1, k=2 -> 1 - (1 - 2/4) = 0.5, which is 1 - C(3,2)/C(4,2) = 1 - 3/6.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n (got n={n}, c={c})")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem (got {n})")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")
_NOISE = re.compile(r"\\[,;:! ]|\\left|\\right|\\displaystyle|\$|\s+")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_FRACTION = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}|(-?\d+)/(\d+)")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def answer_key(answer: Any) -> str | None:
    """The form an extracted answer votes under in maj@k; None for no answer.

    Layout is dropped (spaces, ``$``, ``\\left``/``\\right``, ``\\,``, ``\\text{}``, a trailing
    period, ``\\dfrac`` -> ``\\frac``); a plain number (``1,000``, ``2.50``, ``-3/4``,
    ``\\frac{3}{4}``) votes as its exact value, so ``0.5``, ``1/2`` and ``\\frac{1}{2}`` agree.
    Anything else votes as its cleaned text: equivalent forms that differ otherwise
    (``x=3`` and ``3``) vote apart, as in the usual string-normalised majority vote.
    """
    if answer is None:
        return None
    s = _TEXT.sub(r"\1", str(answer).strip())
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _NOISE.sub("", s).rstrip(".")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    if _NUMBER.fullmatch(s):
        return str(Fraction(s))
    m = _FRACTION.fullmatch(s)
    if m:
        sign, num, den = (m.group(1), m.group(2), m.group(3)) if m.group(2) else ("", m.group(4), m.group(5))
        if int(den) != 0:
            value = Fraction(int(num), int(den))
            return str(-value if sign else value)
    return s or None


def majority(keys: Sequence[str | None]) -> int | None:
    """Index of the sample whose answer wins the vote, or None when no sample has an answer.

    Samples without an answer do not vote. Ties go to the answer seen first (the tied answer
    whose earliest sample comes first), so the result depends only on the samples' order.
    """
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    first = {}
    for i, key in enumerate(keys):
        if key is not None:
            first.setdefault(key, i)
    winner = max(counts, key=lambda key: (counts[key], -first[key]))
    return first[winner]


def maj_at_k(keys: Sequence[str | None], correct: Sequence[bool], k: int) -> bool:
    """Majority vote over the first ``k`` samples: True when the winning answer was judged correct."""
    if not 1 <= k <= len(keys):
        raise ValueError(f"maj@{k} needs at least {k} samples per problem (got {len(keys)})")
    winner = majority(keys[:k])
    return winner is not None and bool(correct[winner])


def grade(examples: Sequence, completions: Sequence[Sequence[str]], judge,
          extra: Sequence[Sequence[dict]] | None = None) -> list[dict]:
    """Judge every completion of every example with the example's own verifier.

    ``completions[i]`` are the samples of ``examples[i]``; ``judge`` is a ``reasoner.rewards.Rewarder``
    holding the ``task`` term; ``extra[i][j]`` is merged into sample j's record (e.g. its finish
    reason). Returns one record per example: its id, prompt, reference, number of samples
    and of correct ones, and per sample the text, extracted answer, verdict and reason.
    """
    if len(completions) != len(examples):
        raise ValueError(f"{len(completions)} groups of completions for {len(examples)} examples")
    texts = [t for group in completions for t in group]
    flat = [ex for ex, group in zip(examples, completions, strict=True) for _ in group]
    verdicts = judge.judge(texts, flat).verdicts[TASK] if texts else []
    records, pos = [], 0
    for i, (ex, group) in enumerate(zip(examples, completions, strict=True)):
        samples = []
        for j, text in enumerate(group):
            v = verdicts[pos]
            pos += 1
            details = dict(v.details) if v is not None else {}
            answer = details.pop("extracted", None)
            samples.append({"text": text, "answer": answer, "key": answer_key(answer),
                            "correct": bool(v is not None and v.ok), "reward": None if v is None else v.reward,
                            "reason": "not_applicable" if v is None else v.reason, "details": details,
                            **(extra[i][j] if extra else {})})
        records.append({"id": ex.id, "prompt": ex.prompt, "reference": ex.reference, "verifier": ex.verifier,
                        "samples": len(samples), "correct": sum(s["correct"] for s in samples),
                        "completions": samples})
    return records


def metrics(records: Sequence[dict]) -> dict[str, Any]:
    """Task scores from per-example records: pass@k for every k up to the samples per problem,
    maj@k likewise when the verifier extracts answers, and the pass@1 standard error (the
    standard deviation of the per-problem pass@1 over the square root of the number of problems)."""
    if not records:
        raise ValueError("no records to score")
    n = min(r["samples"] for r in records)
    per_example = [r["correct"] / r["samples"] for r in records]
    out: dict[str, Any] = {
        "problems": len(records), "samples": n,
        "pass@k": {k: fmean(pass_at_k(r["samples"], r["correct"], k) for r in records) for k in range(1, n + 1)},
        "pass@1_stderr": stdev(per_example) / math.sqrt(len(records)) if len(records) > 1 else 0.0,
    }
    samples = [s for r in records for s in r["completions"]]
    # majority vote applies to verifiers that extract an answer (math: "extracted" or reason no_answer)
    if any(s["answer"] is not None or s["reason"] == "no_answer" for s in samples):
        out["maj@k"] = {k: fmean(maj_at_k([s["key"] for s in r["completions"]], [s["correct"] for s in r["completions"]], k)
                                 for r in records) for k in range(1, n + 1)}
        out["answered"] = fmean(s["answer"] is not None for s in samples)
    out["reasons"] = dict(Counter(s["reason"] for s in samples).most_common())
    return out


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 10_000, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, float]:
    """``mean(b) - mean(a)`` over paired per-problem scores, with a bootstrap confidence interval.

    Problems are resampled with replacement (the same draw for both runs, so the pairing and the
    problems' difficulty cancel out); the interval is the percentile interval of the resampled
    deltas. ``p`` is the two-sided bootstrap p-value of "no difference": the share of resampled
    deltas at least as far from the observed delta as the observed delta is from zero.
    """
    import numpy as np

    if len(a) != len(b) or not len(a):
        raise ValueError(f"need two equally long, non-empty score lists (got {len(a)} and {len(b)})")
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    delta = float(d.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 4_000_000 // len(d))  # bounded memory: at most ~32 MB of indices at a time
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = d[rng.integers(0, len(d), size=(stop - start, len(d)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    p = float(np.mean(np.abs(means - delta) >= abs(delta) - 1e-12))
    return {"n": len(d), "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)), "delta": delta,
            "ci_low": float(low), "ci_high": float(high), "p": p, "resamples": resamples, "confidence": confidence}
