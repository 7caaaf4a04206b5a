"""Answer extraction: each strategy, its order, and linear cost on hostile replies."""

import time

import pytest

from reasoner.verifiers.extract import DEFAULT, STRATEGIES, STRICT, extract, last_boxed


@pytest.mark.parametrize("text, expected", [
    (r"so the answer is \boxed{42}.", "42"),
    (r"\boxed{1} then \boxed{2}", "2"),                                   # the last box
    (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),                             # nested braces
    (r"\fbox{7}", "7"),
    (r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"),
    (r"\boxed{\{1,2\}}", r"\{1,2\}"),                                     # escaped braces do not count
    (r"\boxed 5", "5"),                                                   # \boxed without braces
    (r"\boxed{\boxed{3}}", "3"),
    (r"\boxed{2} and an unclosed \boxed{3", "2"),
    ("no box here", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize("text, strategies, expected", [
    ("Natalia sold 48 clips.\n#### 72", ("hash",), ("72", "hash")),
    ("#### 1,000", ("hash",), ("1,000", "hash")),
    ("The answer is 42. I hope it is correct.", ("answer_is",), ("42", "answer_is")),
    ("The answer is 4.2", ("answer_is",), ("4.2", "answer_is")),
    (r"The final answer is $\frac{3}{4}$.", ("answer_is",), (r"\frac{3}{4}", "answer_is")),
    ("**Answer:** 17", ("answer_is",), ("17", "answer_is")),
    ("Answer: 1, 2, 3", ("answer_is",), ("1, 2, 3", "answer_is")),
    ("I think 3 then 12 then 5/6", ("last_number",), ("5/6", "last_number")),
    ("It costs 1,234 dollars", ("last_number",), ("1,234", "last_number")),
    ("It is 7", STRICT, (None, None)),                                      # strict: boxed only
    ("#### 3\nbut \\boxed{4}", DEFAULT, ("4", "boxed")),                   # order of strategies
    ("#### 3\nbut \\boxed{4}", ("hash", "boxed"), ("3", "hash")),
])
def test_extract(text, strategies, expected):
    assert extract(text, strategies) == expected


def test_unknown_strategy_is_an_error():
    with pytest.raises(ValueError, match="unknown extraction strategy"):
        extract("x", ("guess",))


def test_non_string_has_no_answer():
    assert extract(None, STRATEGIES) == (None, None)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", [
    "\\boxed{" * 50_000,                                  # thousands of unclosed boxes
    "{" * 100_000,
    "\\boxed{" + "{" * 50_000 + "}" * 50_000 + "}",
    ("answer is " * 10_000),
    "1," * 50_000,
])
def test_extraction_is_linear_on_hostile_replies(text):
    start = time.perf_counter()
    for strategies in (STRATEGIES, ("last_number",)):
        extract(text, strategies)
    assert time.perf_counter() - start < 1.0
