"""`MathVerifier`: extract the final answer, then compare it with the reference under a bound.

Extraction (``reasoner.verifiers.extract``) is string work in this process. Pairs that are trivially safe,
the same text or two plain numbers (``42`` vs ``42.0``, ``-3/4`` vs ``-0.75``, ``1,000`` vs
``1000``), are decided here with `fractions.Fraction` in microseconds (`quick_compare`).
Everything else is parsed and compared in a `CheckPool` worker that is killed and replaced past
``timeout`` seconds or ``memory_mb`` MiB, so a pathological answer is a ``timeout`` verdict, never
a stuck trainer. ``workers=0`` runs the checks in this process instead (a time bound by
``SIGALRM`` on the main thread, no memory bound): for debugging and single-process use.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from reasoner.verifiers import Verdict, Verifier
from reasoner.verifiers.extract import DEFAULT, STRATEGIES, defines_macro, extract
from reasoner.verifiers.math_answer.latex import MAX_CHARS, MIN_SIGNIFICANT
from reasoner.verifiers.math_answer.pool import CheckPool, Result, run_inline

MAX_SENT = 4 * MAX_CHARS  # longer answers cannot parse: judged here, never shipped to a worker
REASONS = ("correct", "wrong", "no_answer", "unparsable", "timeout", "verifier_error")
_QUICK = re.compile(r"^(-?)(\d+(?:\.\d*)?|\.\d+)(?:/(\d+))?$")
_QUICK_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$")
_QUICK_JOIN = re.compile(r"\\!|^\$|\$$|\\\$|\.$")  # removed: nothing is left between its neighbours
_QUICK_SPACE = re.compile(r"(?:\\[,; ]|\s)+")      # a space: between digits, only as thousands grouping
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$|^-?\d{1,3}(?: \d{3})+(?:\.\d+)?$")


def _plain_number(s: str) -> tuple[Fraction, bool, Fraction] | None:
    """``(value, written_as_decimal, last_digit_unit)`` for a plain number: ``-12``, ``3.50``, ``7/8``.

    ``last_digit_unit`` is ``10**-decimals`` for a decimal of 6+ significant digits, else 0.
    """
    if len(s) > 60:
        return None
    s = _QUICK_SPACE.sub(" ", _QUICK_JOIN.sub("", s.strip()).replace("{,}", ",")).strip()
    if _THOUSANDS.match(s):  # 1,234 and 28 800; not 32, 349 (two items) or 1 2
        s = s.replace(",", "").replace(" ", "")
    m = _QUICK.match(s)
    if m:
        sign, num, den = m.groups()
        if den is not None and (int(den) == 0 or "." in num):
            return None
        value = Fraction(num) / (int(den) if den else 1)
        ulp = Fraction(0)
        if "." in num and den is None:
            whole, _, decimals = num.partition(".")
            if len((whole + decimals).lstrip("0")) >= MIN_SIGNIFICANT:
                ulp = Fraction(1, 10 ** len(decimals))
        return (-value if sign else value), "." in num, ulp
    m = _QUICK_FRAC.match(s)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return (-value if m.group(1) else value), False, Fraction(0)
    return None


def _terminating(x: Fraction) -> bool:
    q = x.denominator
    for p in (2, 5):
        while q % p == 0:
            q //= p
    return q == 1


def quick_compare(answer: str, reference: str, rel_tol: float) -> Result | None:
    """The verdict for trivially safe pairs, or None when the pair needs the full check.

    Same rules as the full check (``compare``) for the pairs it decides: exact equality; with a
    decimal on either side, ``|a - r| <= rel_tol * |r|`` or, for a decimal answer of 6+ significant
    digits, one unit in its last digit; two terminating decimals must match exactly.
    """
    if answer.strip() == reference.strip() and answer.strip():
        return "correct", {"rule": "text"}
    a, r = _plain_number(answer), _plain_number(reference)
    if a is None or r is None:
        return None
    (va, dec_a, ulp), (vr, dec_r, _) = a, r
    details = {"answer_normalized": str(va), "reference_normalized": str(vr)}
    if va == vr:
        return "correct", {**details, "rule": "number"}
    if rel_tol > 0 and (dec_a or dec_r) and not (_terminating(va) and _terminating(vr)):
        if abs(va - vr) <= Fraction(str(rel_tol)) * abs(vr) or abs(va - vr) < ulp:
            return "correct", {**details, "rule": "number"}
    return "wrong", details


class MathVerifier(Verifier):
    """Final answer (\\boxed{}, #### n, 'the answer is') checked against the reference with sympy, bounded."""

    name = "math"

    def __init__(self, strategies: Sequence[str] | str = DEFAULT, rel_tol: float = 1e-6, timeout: float = 3.0,
                 memory_mb: int = 1024, workers: int = 2):
        self.strategies = _strategies(strategies)
        if rel_tol < 0 or timeout <= 0 or memory_mb < 64 or workers < 0:
            raise ValueError("math verifier: need rel_tol >= 0, timeout > 0, memory_mb >= 64, workers >= 0")
        self.rel_tol, self.timeout, self.memory_mb, self.workers = float(rel_tol), float(timeout), memory_mb, workers
        self._pool: CheckPool | None = None
        self._lock = threading.Lock()

    # --- public ---------------------------------------------------------------------------
    def verify(self, completion: str, example: Any) -> Verdict:
        return self.verify_batch([completion], [example])[0]

    def verify_batch(self, completions: Sequence[str], examples: Sequence[Any]) -> list[Verdict]:
        if len(completions) != len(examples):
            raise ValueError(f"{len(completions)} completions for {len(examples)} examples")
        verdicts: list[Verdict | None] = [None] * len(completions)
        extracted: list[dict] = []
        jobs: list[tuple[int, str, str]] = []  # (completion index, answer, one reference)
        for k, (completion, example) in enumerate(zip(completions, examples)):
            meta = getattr(example, "meta", None) or {}
            strategies = _strategies(meta.get("extract", self.strategies))
            text = _text(completion)
            answer, how = extract(text, strategies)
            info = {"extracted": None if answer is None else answer[:300], "strategy": how}
            extracted.append(info)
            macro = defines_macro(text)
            if macro is not None:  # \renewcommand{\boxed}... could make the box say anything
                verdicts[k] = Verdict(0.0, False, "unparsable", {**info, "side": "answer",
                                                                  "error": f"the reply defines a macro ({macro})"})
                continue
            if answer is None:
                verdicts[k] = Verdict(0.0, False, "no_answer", {**info, "strategies": list(strategies)})
                continue
            for ref in _references(example.reference):
                jobs.append((k, answer, ref))
        results = self._run([(a, r) for _, a, r in jobs])
        best: dict[int, Result] = {}
        for (k, _, _), result in zip(jobs, results):  # several references: the best result wins
            if k not in best or _rank(result[0]) < _rank(best[k][0]):
                best[k] = result
        for k, (reason, details) in best.items():
            ok = reason == "correct"
            verdicts[k] = Verdict(float(ok), ok, reason, {**extracted[k], **details})
        return verdicts  # type: ignore[return-value]

    def check(self, answer: str, reference: str) -> Verdict:
        """Compare an already extracted answer with a reference (no extraction)."""
        return self.check_batch([answer], [reference])[0]

    def check_batch(self, answers: Sequence[str], references: Sequence[Any]) -> list[Verdict]:
        """`check` for many pairs at once, in parallel across the pool."""
        if len(answers) != len(references):
            raise ValueError(f"{len(answers)} answers for {len(references)} references")
        results = self._run([(_text(a), _text(r)) for a, r in zip(answers, references)])
        return [Verdict(float(reason == "correct"), reason == "correct", reason, details) for reason, details in results]

    def equivalent(self, answer: str, reference: str) -> bool:
        """True when ``answer`` and ``reference`` are the same mathematical answer."""
        return self.check(answer, reference).ok

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------
    def _run(self, pairs: list[tuple[str, str]]) -> list[Result]:
        results: list[Result | None] = [None] * len(pairs)
        slow: list[int] = []
        for i, (answer, reference) in enumerate(pairs):
            results[i] = quick_compare(answer, reference, self.rel_tol)
            if results[i] is None and len(answer) > MAX_SENT:
                results[i] = ("unparsable", {"side": "answer", "error": f"answer longer than {MAX_CHARS} characters"})
            if results[i] is None:
                slow.append(i)
        if slow:
            jobs = [(pairs[i][0], pairs[i][1], self.rel_tol) for i in slow]
            if self.workers == 0:
                done = run_inline(jobs, self.timeout)
            else:
                with self._lock:
                    if self._pool is None:
                        self._pool = CheckPool(self.workers, self.timeout, self.memory_mb)
                done = self._pool.run(jobs)
            for i, result in zip(slow, done):
                results[i] = result
        return results  # type: ignore[return-value]


def _rank(reason: str) -> int:
    return {"correct": 0, "wrong": 1, "unparsable": 2, "timeout": 3}.get(reason, 4)


def _strategies(value: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [s.strip() for s in value.split(",") if s.strip()]
    value = tuple(value)
    unknown = set(value) - set(STRATEGIES)
    if unknown or not value:
        raise ValueError(f"unknown extraction strategies {sorted(unknown)} (known: {', '.join(STRATEGIES)})")
    return value


def _text(completion: Any) -> str:
    if isinstance(completion, bytes):
        return completion.decode("utf-8", errors="replace")
    return completion if isinstance(completion, str) else str(completion)


def _references(reference: Any) -> list[str]:
    """A reference, or a list of acceptable references, as strings (``27.0`` -> ``"27.0"``)."""
    if isinstance(reference, (list, tuple)) and reference:
        return [_text(r) for r in reference]
    return [_text(reference)]
