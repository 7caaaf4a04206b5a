"""Size guards of the answer parser: a power, factorial or number too large to build is a
`ParseError` before sympy builds it, so a pathological answer costs microseconds, not minutes."""

from __future__ import annotations

import math

import sympy

from reasoner.verifiers.math_answer.latex import ParseError

MAX_DIGITS = 4000  # below Python's 4300-digit limit on int-to-text conversion
MAX_FACTORIAL = 1500  # 1500! has 4115 digits
MAX_SYMBOLIC_EXPONENT = 10**4  # x^{999999}: evaluating or simplifying it would take the whole time bound


def digits(x: sympy.Basic) -> float:
    """Decimal digits of the numerator or denominator of a rational, whichever is longer."""
    if isinstance(x, sympy.Rational):
        return max(_log10(abs(int(x.p))), _log10(int(x.q)))
    return 0.0


def _log10(n: int) -> float:
    if n <= 1:
        return 0.0
    return math.log10(n) if n < 10**300 else n.bit_length() * math.log10(2)


def check_size(x: sympy.Basic) -> sympy.Basic:
    if isinstance(x, sympy.Rational) and (x.p.bit_length() > MAX_DIGITS * 3.33 or x.q.bit_length() > MAX_DIGITS * 3.33):
        raise ParseError(f"number with more than {MAX_DIGITS} digits")
    return x


def power(base: sympy.Basic, exp: sympy.Basic) -> sympy.Basic:
    if isinstance(exp, sympy.Rational) and abs(exp.p) > MAX_SYMBOLIC_EXPONENT and not base.is_number:
        raise ParseError(f"exponent over {MAX_SYMBOLIC_EXPONENT} on a variable: too large to check")
    if base.is_number and exp.is_number:
        if isinstance(exp, sympy.Rational) and isinstance(base, sympy.Rational):
            size = abs(exp.p) * max(digits(base), 1e-3) / exp.q
            if size > MAX_DIGITS and abs(base) != 1 and base != 0:
                raise ParseError(f"power with more than {MAX_DIGITS} digits")
        elif exp.is_Rational and abs(exp) > 10**4 and (base.free_symbols or abs(base) != 1):
            raise ParseError("exponent too large")
        elif not exp.is_Rational and (exp.has(sympy.Pow) or exp.has(sympy.factorial)):
            value = sympy.Abs(exp).evalf(15)
            if value.is_Number and value > 10**4:
                raise ParseError("exponent too large")
    if isinstance(base, sympy.Integer) and isinstance(exp, sympy.Rational) and exp.q > 1 and digits(base) > 60:
        return sympy.Pow(base, exp, evaluate=False)  # sympy would search a huge number for perfect powers
    return check_size(sympy.Pow(base, exp))


def factorial(x: sympy.Basic) -> sympy.Basic:
    if x.is_number:
        if not (isinstance(x, sympy.Integer) and 0 <= x <= MAX_FACTORIAL):
            raise ParseError(f"factorial of {x if digits(x) < 20 else 'a huge number'} not evaluated")
    return sympy.factorial(x)
