"""Property tests: sympy's own LaTeX for random expressions parses back, equal forms are equal, and a
perturbed expression is never equal (no false positive)."""

import random

import pytest
import sympy

from reasoner.verifiers.math_answer.compare import compare
from reasoner.verifiers.math_answer.parser import parse_answer

x, y = sympy.symbols("x y")
ATOMS = [x, y, sympy.Integer(2), sympy.Integer(3), sympy.Rational(1, 2), sympy.pi, sympy.sqrt(2), sympy.E, sympy.I]


def random_expression(rng: random.Random, depth: int) -> sympy.Expr:
    if depth == 0:
        return rng.choice(ATOMS)
    a, b = random_expression(rng, depth - 1), random_expression(rng, depth - 1)
    return rng.choice([
        lambda: a + b, lambda: a * b, lambda: a / b, lambda: -a, lambda: sympy.sqrt(a), lambda: sympy.exp(a),
        lambda: a ** rng.choice([2, 3, -1, sympy.Rational(1, 2)]), lambda: sympy.sin(a), lambda: sympy.log(a),
    ])()


def expressions(seed: int, n: int) -> list[sympy.Expr]:
    rng, out = random.Random(seed), []
    while len(out) < n:
        e = random_expression(rng, rng.randint(1, 3))
        if not e.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            out.append(e)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_sympy_latex_parses_back_to_the_same_value(seed):
    for e in expressions(seed, 60):
        reason, details = compare(sympy.latex(e), sympy.latex(sympy.expand(e)))
        assert reason == "correct", (sympy.latex(e), details)


@pytest.mark.parametrize("seed", range(4))
def test_a_perturbed_expression_is_never_equal(seed):
    rng = random.Random(100 + seed)
    for e in expressions(100 + seed, 60):
        other = rng.choice([e + 1, 2 * e, e + x, e * y, -e if e != 0 else e + 1, e + sympy.Rational(1, 10**9)])
        if sympy.simplify(other - e) == 0:
            continue
        reason, details = compare(sympy.latex(other), sympy.latex(e))
        assert reason != "correct", (sympy.latex(other), sympy.latex(e), details)


def test_parsed_value_is_sympys_value():
    for e in expressions(7, 80):
        assert sympy.simplify(parse_answer(sympy.latex(e)).value - e) == 0, sympy.latex(e)
