"""The whitelist tokenizer and recursive-descent parser: shapes built, text refused, sizes guarded."""

import pytest
import sympy

from reasoner.verifiers.math_answer.latex import ParseError, clean, tokenize
from reasoner.verifiers.math_answer.parser import (
    Choice,
    Interval,
    Matrix,
    Relation,
    Seq,
    Text,
    Union,
    parse_answer,
)

x, y = sympy.symbols("x y")


@pytest.mark.parametrize("text, value", [
    (r"\frac{1}{2}", sympy.Rational(1, 2)),
    (r"\frac12", sympy.Rational(1, 2)),                     # one-token arguments
    (r"\frac{270}7", sympy.Rational(270, 7)),
    ("0.35", sympy.Rational(7, 20)),                         # decimals are exact
    (r"137 \frac{1}{2}", sympy.Rational(275, 2)),            # mixed number
    (r"-3\frac{1}{2}", sympy.Rational(-7, 2)),
    (r"2\sqrt{5}", 2 * sympy.sqrt(5)),
    (r"\sqrt[3]{8}", sympy.Integer(2)),
    (r"\sqrt2", sympy.sqrt(2)),
    (r"\pi r^2", sympy.pi * sympy.Symbol("r") ** 2),
    ("2^10", sympy.Integer(1024)),
    ("5!", sympy.Integer(120)),
    (r"\binom{5}{2}", sympy.Integer(10)),
    (r"\log_2 8", sympy.Integer(3)),
    (r"\sin^2 x", sympy.sin(x) ** 2),
    (r"\sin 2x", sympy.sin(2 * x)),
    (r"\sin x \cos x", sympy.sin(x) * sympy.cos(x)),
    (r"\sin^{-1} x", sympy.asin(x)),
    ("-2 + 7i", -2 + 7 * sympy.I),
    ("e^{x}", sympy.exp(x)),
    ("x_1 + x_2", sympy.Symbol("x_1") + sympy.Symbol("x_2")),
    ("|x - 1|", sympy.Abs(x - 1)),
    (r"\lfloor 2.5 \rfloor", sympy.Integer(2)),
    ("(a+5)(b+2)", (sympy.Symbol("a") + 5) * (sympy.Symbol("b") + 2)),
    ("2√113", 2 * sympy.sqrt(113)),
    (r"\sqrt\binom23", sympy.Integer(0)),                  # a root of zero (found by fuzzing)
    ("1{,}000", sympy.Integer(1000)),
    ("10,\\!080", sympy.Integer(10080)),
])
def test_values(text, value):
    assert parse_answer(text).value == value


def test_shapes():
    assert parse_answer("(1, 2)").value == Seq("tuple", (1, 2))
    assert parse_answer(r"\{1, 2\}").value == Seq("set", (1, 2))
    assert parse_answer("3, 5, 7").value == Seq("list", (3, 5, 7))
    assert parse_answer("[2, 5)").value == Interval(2, 5, False, True)
    assert parse_answer(r"x \in (2, \infty)").value == Interval(2, sympy.oo, True, True)
    assert isinstance(parse_answer(r"(-\infty, 2) \cup (3, \infty)").value, Union)
    assert parse_answer("y = 2x + 3").value == Relation(("=",), (y, 2 * x + 3))
    assert parse_answer(r"2 \le x < 5").value == Relation(("<=", "<"), (2, x, 5))
    assert parse_answer(r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}").value == Matrix(((1, 2), (3, 4)))
    assert parse_answer(r"\text{(C)}").value == Choice("C")
    assert parse_answer(r"\text{East}").value == Text("east")


def test_marks_record_units_of_measure():
    assert parse_answer(r"10\%").marks == {"percent"}
    assert parse_answer(r"90^\circ").marks == {"degree"}
    assert "unit" in parse_answer(r"15\mbox{ cm}^2").marks
    assert "dollar" in parse_answer(r"\$18.90").marks


def test_clean_removes_presentation():
    assert clean(r"$\left( 3, \dfrac{\pi}{2} \right)$.")[0] == r"( 3, \frac{\pi}{2} )"


@pytest.mark.parametrize("text, error", [
    ("__import__('os').system('ls')", "unexpected character"),
    ("x.__class__", "unexpected character"),
    (r"\input{/etc/passwd}", "unknown command"),
    ("lambda: 1", "unexpected"),
    ("9^{9^{9^{9}}}", "digits"),
    ("10^{10^{10}}!", "digits"),
    ("(10^{100})!", "factorial"),
    (r"\binom{100000}{50000}", "binomial"),
    ("x^{10000000}", "exponent"),
    ("{" * 200 + "1" + "}" * 200, "nesting"),
    ("(" * 200 + "1" + ")" * 200, "nesting"),
    ("1" * 5000, "longer"),
    ("", "empty"),
    ("(1, 2]", None),
])
def test_refused(text, error):
    if error is None:  # a mismatched pair of brackets with two items is a half-open interval
        assert parse_answer(text).value == Interval(1, 2, True, False)
        return
    with pytest.raises(ParseError, match=error):
        parse_answer(text)


def test_tokenizer_emits_only_whitelisted_kinds():
    kinds = {t.kind for t in tokenize(r"\frac{x^2}{3} + \sin(y) \cdot 2.5 - \pi \le 7 cm")}
    assert kinds <= {"num", "letter", "word", "cmd", "op"}
