"""Math verifier: extract the final answer and compare it with the reference using sympy numbers.

This version checks numeric answers (integers, decimals, fractions, ``\\frac``, thousands
separators, a leading ``$`` or trailing unit word) exactly with ``sympy.Rational``, and falls
back to a normalised string comparison for anything else. It never evaluates text: numbers
are read with a regular expression and built with ``Rational(str)``, never ``sympify``.

Which extraction strategies count (see ``verifiers.extract``) is set per verifier
(``strategies=...``) or per example (``meta["extract"]``). Verdict reasons: ``correct``,
``wrong``, ``no_answer``.
"""

from __future__ import annotations

import re

import sympy

from verifiers import Verdict, Verifier
from verifiers.extract import DEFAULT, STRATEGIES, extract

_FRAC = re.compile(r"^\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}$")
_PLAIN = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?$")
_LEADING = re.compile(r"^(-?(?:\d+(?:\.\d+)?|\.\d+)(?:/\d+)?)(?:\s+[A-Za-z][A-Za-z ]*)?$")
_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mbox)\s*\{([^{}]*)\}")
MAX_DIGITS = 400


def normalize(s: str) -> str:
    s = s.strip().strip("$").strip()
    s = _TEXT.sub(r" \1", s)
    for junk in ("\\!", "\\,", "\\ ", "\\;", "\\left", "\\right", "\\displaystyle"):
        s = s.replace(junk, "")
    s = s.replace("{,}", "")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # 1,000 -> 1000
    s = s.replace("\\$", "").replace("\\%", "%")
    s = s.rstrip(".").strip()
    if s.startswith("$"):
        s = s[1:].strip()
    return re.sub(r"\s+", " ", s)


def to_number(s: str) -> sympy.Rational | None:
    """Exact rational value of a numeric answer string, or None if it is not one."""
    s = normalize(s)
    percent = s.endswith("%")
    if percent:
        s = s[:-1].strip()
    if len(s) > MAX_DIGITS:
        return None
    m = _FRAC.match(s)
    if m:
        num, den = int(m.group(1)), int(m.group(2))
        return None if den == 0 else sympy.Rational(num, den)
    m = _PLAIN.match(s) or _LEADING.match(s)
    if not m:
        return None
    text = m.group(1) if m.re is _LEADING else s
    if "/" in text:
        num, den = text.split("/")
        if float(den) == 0:
            return None
        value = sympy.Rational(num) / sympy.Rational(den)
    else:
        value = sympy.Rational(text)
    return value / 100 if percent else value


class MathVerifier(Verifier):
    """Final answer (\\boxed{}, #### n, 'the answer is') compared with the reference by value."""

    name = "math"

    def __init__(self, strategies: tuple[str, ...] | list[str] | str = DEFAULT, rel_tol: float = 1e-6):
        if isinstance(strategies, str):
            strategies = tuple(s.strip() for s in strategies.split(","))
        unknown = set(strategies) - set(STRATEGIES)
        if unknown:
            raise ValueError(f"unknown extraction strategies {sorted(unknown)} (known: {', '.join(STRATEGIES)})")
        self.strategies = tuple(strategies)
        self.rel_tol = rel_tol

    def verify(self, completion: str, example) -> Verdict:
        meta = getattr(example, "meta", None) or {}
        strategies = tuple(meta.get("extract", self.strategies))
        answer, how = extract(completion, strategies)
        if answer is None:
            return Verdict(0.0, False, "no_answer", {"strategies": list(strategies)})
        details = {"extracted": answer[:200], "strategy": how}
        ok = self.equivalent(answer, str(example.reference))
        return Verdict(float(ok), ok, "correct" if ok else "wrong", details)

    def equivalent(self, answer: str, reference: str) -> bool:
        a, r = to_number(answer), to_number(reference)
        if a is not None and r is not None:
            if a == r:
                return True
            scale = max(abs(r), sympy.Rational(1))
            return bool(abs(a - r) <= self.rel_tol * scale)
        return normalize(answer).replace(" ", "") == normalize(reference).replace(" ", "")
