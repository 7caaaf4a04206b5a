"""Turn completions into scalar rewards with verifiers and the weights of the settings.

A reward term is ``NAME=WEIGHT``. ``task`` stands for each example's own verifier (the one
its task declares); any other name is a verifier plugin applied to every example, or a
Python function ``module:function`` (`CallableReward`). The
reward of a completion is ``sum_k weight_k * reward_k`` over the terms whose verifier
applies (a verifier returning ``None`` does not apply). Verifier crashes are verdicts
(``verifier_error``, reward 0), counted and logged; they never stop training.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

from reasoner import verifiers
from reasoner.verifiers import Verdict, Verifier

log = logging.getLogger(__name__)
TASK = "task"


@dataclass
class Judgement:
    """What ``Rewarder.judge`` says about a list of completions: rewards, per-term rewards and verdicts."""

    rewards: list[float]  # combined reward per completion
    terms: dict[str, list[float | None]]  # per term: reward per completion (None: not applicable)
    verdicts: dict[str, list[Verdict | None]]  # per term: the verdicts
    correct: list[bool]  # the task verifier said ok
    errors: dict[str, int]  # per term: verifier_error verdicts
    seconds: dict[str, float] = field(default_factory=dict)  # per verifier: wall seconds its batches took

    def __add__(self, other: "Judgement") -> "Judgement":
        seconds = dict(self.seconds)
        for name, s in other.seconds.items():
            seconds[name] = seconds.get(name, 0.0) + s
        return Judgement(self.rewards + other.rewards, {t: v + other.terms[t] for t, v in self.terms.items()},
                      {t: v + other.verdicts[t] for t, v in self.verdicts.items()}, self.correct + other.correct,
                      {t: n + other.errors.get(t, 0) for t, n in self.errors.items()}, seconds)

    def select(self, flat: list[int]) -> "Judgement":
        return Judgement([self.rewards[i] for i in flat], {t: [v[i] for i in flat] for t, v in self.terms.items()},
                      {t: [v[i] for i in flat] for t, v in self.verdicts.items()}, [self.correct[i] for i in flat],
                      self.errors, self.seconds)


class CallableReward(Verifier):
    """A reward written as a Python function, named ``module:function`` in ``--rewards``.

    ``function(completion: str, example) -> float | bool | Verdict | None``: a number is the reward
    (ok when > 0), None means it does not apply. An exception, or a value of another type, is a
    ``verifier_error`` verdict (reward 0), as for any verifier."""

    def __init__(self, spec: str):
        import importlib

        self.name = spec
        module, _, attr = spec.partition(":")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise verifiers.VerifierError(f"reward {spec!r}: cannot import {attr!r} from {module!r} ({exc})") from None
        if not callable(fn):
            raise verifiers.VerifierError(f"reward {spec!r} is not a function")
        self.fn = fn

    def verify(self, completion: str, example) -> Verdict | None:
        value = self.fn(completion, example)
        if value is None or isinstance(value, Verdict):
            return value
        if isinstance(value, bool):
            return Verdict(float(value), value, "true" if value else "false")
        if isinstance(value, (int, float)) and value == value:
            return Verdict(float(value), value > 0, "scored")
        raise TypeError(f"returned {type(value).__name__}, not a number, bool, Verdict or None")


class Rewarder:
    def __init__(self, weights: dict[str, float], options: dict[str, dict] | None = None):
        self.weights = dict(weights)
        self.options = dict(options or {})
        self._verifiers: dict[str, Verifier] = {}
        self._seconds: dict[str, float] = {}  # per verifier, during one judge()
        for name in self.weights:
            if name != TASK:
                self.verifier(name)  # unknown names fail now, not at step 1

    def verifier(self, name: str) -> Verifier:
        if name not in self._verifiers:
            if ":" in name:
                self._verifiers[name] = CallableReward(name)
            else:
                self._verifiers[name] = verifiers.get(name, **self.options.get(name, {}))
        return self._verifiers[name]

    def _batch(self, name: str, texts: Sequence[str], examples: Sequence) -> list[Verdict | None]:
        t0 = time.perf_counter()
        try:
            return verifiers.safe_verify_batch(self.verifier(name), texts, examples)
        finally:
            self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - t0

    def _verdicts(self, term: str, texts: Sequence[str], examples: Sequence) -> list[Verdict | None]:
        if term != TASK:
            return self._batch(term, texts, examples)
        out: list[Verdict | None] = [None] * len(texts)
        by_verifier: dict[str, list[int]] = {}
        for i, ex in enumerate(examples):
            by_verifier.setdefault(ex.verifier, []).append(i)
        for name, idx in by_verifier.items():
            verdicts = self._batch(name, [texts[i] for i in idx], [examples[i] for i in idx])
            for i, v in zip(idx, verdicts):
                out[i] = v
        return out

    def judge(self, texts: Sequence[str], examples: Sequence) -> Judgement:
        """Run every term's verifier on ``texts[i]`` against ``examples[i]``; the weighted reward of each."""
        terms, verdicts, errors = {}, {}, {}
        self._seconds = {}
        total = [0.0] * len(texts)
        for term, weight in self.weights.items():
            vs = self._verdicts(term, texts, examples)
            verdicts[term] = vs
            terms[term] = [None if v is None else float(v.reward) for v in vs]
            errors[term] = sum(1 for v in vs if v is not None and v.reason == "verifier_error")
            if errors[term]:
                first = next(v for v in vs if v is not None and v.reason == "verifier_error")
                log.warning("reward %s: %d verifier error(s), e.g. %s", term, errors[term], first.details.get("error"))
            for i, r in enumerate(terms[term]):
                if r is not None:
                    total[i] += weight * r
        if TASK in verdicts:
            correct = [bool(v is not None and v.ok) for v in verdicts[TASK]]
        else:
            correct = [bool(v is not None and v.ok) for v in self._verdicts(TASK, texts, examples)]
        return Judgement(total, terms, verdicts, correct, errors, dict(self._seconds))

    def close(self) -> None:
        for v in self._verifiers.values():
            try:
                v.close()
            except Exception:  # noqa: BLE001 - closing must not mask the run's result
                log.debug("closing verifier failed", exc_info=True)
