"""Held-out evaluation: greedy completions scored by each example's own verifier."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

from reasoner.prompts import encode_prompts
from reasoner.rewards import TASK, Rewarder
from reasoner.rollout import Sampler, SamplingParams


@dataclass
class EvalResult:
    accuracy: float
    n: int
    seconds: float
    records: list[dict] = field(default_factory=list)


def evaluate(sampler: Sampler, tokenizer, examples: Sequence, judge: Rewarder, max_new_tokens: int,
             system_prompt: str | None = None, batch_size: int = 64, progress=None) -> EvalResult:
    """Greedy pass@1 of ``examples``. ``judge`` must hold the ``task`` term (``Rewarder({"task": 1})``);
    ``progress`` is an optional callable(n_done)."""
    if TASK not in judge.weights:
        raise ValueError("evaluate needs a judge with the 'task' reward term")
    start = time.perf_counter()
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)
    records, correct = [], 0
    for i in range(0, len(examples), batch_size):
        chunk = list(examples[i:i + batch_size])
        prompt_ids = encode_prompts(tokenizer, [ex.prompt for ex in chunk], system_prompt)
        groups = sampler.generate(prompt_ids, 1, params)
        texts = [g[0].text for g in groups]
        scored = judge.score(texts, chunk)
        for ex, text, ok, verdict in zip(chunk, texts, scored.correct, scored.verdicts[TASK]):
            correct += ok
            records.append({"id": ex.id, "completion": text, "correct": ok,
                            "reason": None if verdict is None else verdict.reason})
        if progress:
            progress(len(chunk))
    n = len(records)
    return EvalResult(correct / n if n else 0.0, n, time.perf_counter() - start, records)
