"""Equality of two parsed values (sympy): exact numbers, decimals within a tolerance, expressions
whose difference is proved zero. Used by `compare`, whose module docstring states the rules
(``number`` and ``expression``)."""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from fractions import Fraction

import mpmath
import sympy

NUMERIC_POINTS = 5
EVAL_DIGITS = 80
EVAL_BITS = 4 * EVAL_DIGITS
MAX_SIMPLIFY_OPS = 400  # larger differences are judged by numeric evaluation only
MAX_EXPANDED_TERMS = 300  # expand only what stays this small


@dataclass(frozen=True)
class Tolerance:
    """``rel``: relative tolerance (0 for exact answers); ``ulp``: one unit in the last written digit
    of an answer that is a single decimal with at least `MIN_SIGNIFICANT` significant digits, else 0."""
    rel: float
    ulp: Fraction = Fraction(0)
    approx_a: bool = False  # the answer / the reference is written with a decimal point: a decimal number on
    approx_r: bool = False  # that side is an approximation, the only place `rel` and `ulp` apply


def expr_equal(a: sympy.Basic, b: sympy.Basic, tol: float) -> str | None:
    """``number`` / ``expression`` when ``a`` equals ``b`` (see the module docstring), else None."""
    if a == b:
        return "number" if a.is_number else "expression"
    if any(x.has(sympy.nan, sympy.zoo) for x in (a, b)):
        return None
    if a.is_number and b.is_number:
        return "number" if _numbers_equal(a, b, tol) else None
    if a.has(sympy.oo, -sympy.oo) or b.has(sympy.oo, -sympy.oo):
        return None
    return _expressions_equal(a, b, tol)


def _terminating(x: sympy.Basic) -> bool:
    if not isinstance(x, sympy.Rational):
        return False
    q = int(x.q)
    for p in (2, 5):
        while q % p == 0:
            q //= p
    return q == 1


def _numbers_equal(a, b, tol: Tolerance) -> bool:
    """Exact, or within ``tol.rel * |b|`` or ``tol.ulp`` when decimals are involved (see the module doc)."""
    if isinstance(a, sympy.Rational) and isinstance(b, sympy.Rational):
        if a == b:
            return True
        if tol.rel == 0 or (_terminating(a) and _terminating(b)):
            return False
        d = abs(Fraction(int(a.p), int(a.q)) - Fraction(int(b.p), int(b.q)))
        return d <= Fraction(str(tol.rel)) * abs(Fraction(int(b.p), int(b.q))) or d < tol.ulp
    if a.has(sympy.oo, -sympy.oo) or b.has(sympy.oo, -sympy.oo):  # structural: no assumption queries
        return False
    approx = (tol.approx_a and isinstance(a, sympy.Rational)) or (tol.approx_r and isinstance(b, sympy.Rational))
    try:
        with mpmath.workdps(EVAL_DIGITS):
            va, vb = a.evalf(EVAL_DIGITS)._to_mpmath(EVAL_BITS), b.evalf(EVAL_DIGITS)._to_mpmath(EVAL_BITS)
            d = abs(va - vb)
            if approx and tol.rel > 0:  # a written decimal against an exact irrational: 3.14159 vs \pi
                return bool(d <= tol.rel * abs(vb) or d < tol.ulp.numerator / mpmath.mpf(tol.ulp.denominator))
            if not close(va, vb):
                return False
    except (AttributeError, TypeError, ValueError, OverflowError):
        return False
    return proved_zero(a - b)  # exact numbers that agree to 60 digits: equal only when proved


def _expressions_equal(a, b, tol) -> str | None:
    """Equal when the difference is proved zero: it is 0 as built, after ``expand``, or after
    ``simplify``. Random points screen first: one point where the two sides differ rejects at once
    (and saves ``simplify``), but agreement at the points is never enough on its own."""
    diff = a - b
    if diff == 0:
        return "expression"
    small = sympy.count_ops(diff) <= MAX_SIMPLIFY_OPS
    if small and _expanded_terms(diff) <= MAX_EXPANDED_TERMS and sympy.expand(diff) == 0:
        return "expression"
    for point in sample_points(a, b, NUMERIC_POINTS):
        if point is not None and not close(*point):
            return None
    return "expression (simplify)" if proved_zero(diff) else None


def close(va, vb) -> bool:
    """Exact values: equal. Otherwise the relative error of two 80-digit evaluations is under 10^-60 (the
    digits 80-digit arithmetic on exact inputs gets right; an absolute floor of 10^-70 for values near 0)."""
    if isinstance(va, sympy.Rational) and isinstance(vb, sympy.Rational):
        return va == vb
    va, vb = (v._to_mpmath(EVAL_BITS) if isinstance(v, sympy.Basic) else v for v in (va, vb))
    with mpmath.workdps(EVAL_DIGITS):
        return bool(abs(va - vb) <= mpmath.mpf(10) ** -60 * max(abs(va), abs(vb)) + mpmath.mpf(10) ** -70)


def proved_zero(e) -> bool:
    """``e`` is 0 by ``expand``, ``cancel`` or ``simplify`` (its variables taken as real; bounded: small
    expressions, powers up to 64)."""
    if e == 0:
        return True
    if sympy.count_ops(e) > MAX_SIMPLIFY_OPS or _max_power(e) > 64:
        return False
    try:  # cheap proofs first; variables are real, as the random points are (so sqrt(x^2) is |x|)
        if _expanded_terms(e) <= MAX_EXPANDED_TERMS and sympy.expand(e) == 0:
            return True
        if sympy.cancel(e) == 0:  # rational functions: (x^9 - 1)/(x - 1) - (x^8 + ... + 1)
            return True
        if e.has(sympy.sin, sympy.cos, sympy.tan, sympy.cot, sympy.sec, sympy.csc):  # trig as exponentials
            r = sympy.expand(sympy.expand_trig(e).rewrite(sympy.exp))
            if r == 0 or sympy.cancel(r) == 0:
                return True
        return sympy.simplify(e.xreplace({v: sympy.Symbol(v.name, real=True) for v in e.free_symbols})) == 0
    except (TypeError, ValueError, RecursionError, NotImplementedError, AttributeError):
        return False


def _expanded_terms(e) -> int:
    """An upper bound on the number of terms ``expand(e)`` produces, computed without expanding."""
    if isinstance(e, sympy.Add):
        return sum(_expanded_terms(a) for a in e.args)
    if isinstance(e, sympy.Mul):
        return math.prod(_expanded_terms(a) for a in e.args)
    if isinstance(e, sympy.Pow) and isinstance(e.exp, sympy.Integer) and e.exp > 1:
        n, k = _expanded_terms(e.base), int(e.exp)
        return math.comb(n + k - 1, k) if n < 10**4 and k < 10**4 else 10**9
    return 1


def _max_power(e) -> int:
    powers = [abs(int(p.exp)) for p in e.atoms(sympy.Pow) if isinstance(p.exp, sympy.Integer)]
    return max(powers, default=0)


def sample_points(a, b, n):
    """Values of ``a`` and ``b`` at ``n`` random rational points, ``0.1 <= |x| <= 10`` spread
    log-uniformly with denominators near 10^7 (so no grid such as ``k/997`` can be aimed at).

    The generator is seeded by a hash of both expressions: every check draws its own points, and
    the same check draws the same ones again. Where the value at a point is exact (a rational
    function at a rational point) it stays a sympy ``Rational``; otherwise it is an 80-digit
    mpmath number. Yields None for a point where a value is undefined or infinite.
    """
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    seed = hashlib.sha256((sympy.srepr(a) + "\x00" + sympy.srepr(b)).encode()).digest()
    rng = random.Random(seed)
    for _ in range(n):
        point = {}
        for sym in symbols:
            q = rng.randint(10**7, 2 * 10**7)
            point[sym] = sympy.Rational(rng.choice((-1, 1)) * round(q * 10 ** rng.uniform(-1, 1)), q)
        try:
            values = []
            with mpmath.workdps(EVAL_DIGITS):
                for e in (a, b):
                    v = e.xreplace(point)
                    if not isinstance(v, sympy.Rational):
                        v = v.evalf(EVAL_DIGITS)._to_mpmath(EVAL_BITS)
                        if mpmath.isnan(v) or mpmath.isinf(v):
                            raise ValueError("not finite")
                    values.append(v)
        except (AttributeError, TypeError, ValueError, OverflowError, ZeroDivisionError):
            yield None
            continue
        yield tuple(values)
