import pytest

from reasoner import verifiers
from reasoner.tasks import Example
from reasoner.verifiers import Verdict, VerifierError, safe_verify
from reasoner.verifiers.extract import extract, last_boxed


def ex(reference, **meta):
    return Example(id="e", prompt="p", reference=reference, verifier="math", meta=meta)


def test_builtins_load_through_the_registry():
    names = verifiers.available()
    assert {"math", "format"} <= set(names)
    assert verifiers.get("math").name == "math"


def test_unknown_verifier_lists_known():
    with pytest.raises(VerifierError, match=r"unknown verifier 'nope' \(known: .*format.*math"):
        verifiers.get("nope")


@pytest.mark.parametrize("text, expected", [
    (r"so \boxed{42}.", "42"),
    (r"\boxed{1} then \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\fbox{x^{2}}", "x^{2}"),
    (r"\boxed{unclosed", None),
    (r"\boxed 7", "7"),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_extraction_strategies_in_order():
    assert extract("work... #### 1,234", ("boxed", "hash")) == ("1,234", "hash")
    assert extract("The answer is 12.", ("boxed", "answer_is")) == ("12", "answer_is")
    assert extract("I think 3 or 4", ("boxed", "answer_is")) == (None, None)
    assert extract("I think 3 or 4", ("boxed", "last_number")) == ("4", "last_number")
    with pytest.raises(ValueError):
        extract("x", ("psychic",))


@pytest.mark.parametrize("completion, reference, ok", [
    (r"\boxed{42}", "42", True),
    (r"\boxed{42.0}", "42", True),
    (r"\boxed{\frac{1}{2}}", "0.5", True),
    (r"\boxed{1{,}000}", "1000", True),
    (r"\boxed{\$18}", "18", True),
    (r"\boxed{18 \text{ dollars}}", "18", True),
    (r"\boxed{50\%}", "0.5", True),
    (r"\boxed{0.33}", r"\frac{1}{3}", False),
    (r"\boxed{41}", "42", False),
    ("#### 72", "72", True),
    ("The answer is 9.", "9", True),
])
def test_math_verifier_numeric(completion, reference, ok):
    verdict = verifiers.get("math").verify(completion, ex(reference))
    assert verdict.ok is ok and verdict.reward == float(ok)
    assert verdict.reason == ("correct" if ok else "wrong")


def test_math_verifier_no_answer_and_per_example_strategies():
    v = verifiers.get("math")
    assert v.verify("I am not sure", ex("3")).reason == "no_answer"
    assert v.verify("I think it is 3", ex("3")).reason == "no_answer"
    assert v.verify("I think it is 3", ex("3", extract=["last_number"])).ok


def test_math_verifier_never_evaluates_text():
    v = verifiers.get("math")
    verdict = v.verify(r"\boxed{__import__('os').system('touch /tmp/reasoner-pwned')}", ex("0"))
    assert verdict.reason == "unparsable" and verdict.reward == 0.0
    import os
    assert not os.path.exists("/tmp/reasoner-pwned")


def test_format_verifier_modes():
    box = verifiers.get("format")
    assert box.verify(r"x \boxed{3}", ex("3")).ok and not box.verify("3", ex("3")).ok
    think = verifiers.get("format", mode="think")
    assert think.verify("<think>hmm</think> 3", ex("3")).ok
    assert not think.verify("<think>hmm</think>", ex("3")).ok
    regex = verifiers.get("format", mode="regex", pattern=r"\d+")
    assert regex.verify(" 12 ", ex("3")).ok and not regex.verify("12a", ex("3")).ok
    assert box.verify("7 apples", ex("3", format="regex", format_pattern=r"\d.*")).ok
    with pytest.raises(VerifierError, match="needs a pattern"):
        verifiers.get("format", mode="regex")


class Boom(verifiers.Verifier):
    name = "boom"

    def verify(self, completion, example):
        raise RuntimeError("checker exploded")


def test_a_crashing_verifier_becomes_a_verdict():
    verdict = safe_verify(Boom(), "anything", ex("1"))
    assert verdict == Verdict(0.0, False, "verifier_error", {"error": "RuntimeError: checker exploded"})
    assert verifiers.safe_verify_batch(Boom(), ["a", "b"], [ex("1"), ex("2")])[1].reason == "verifier_error"


def test_third_party_plugins_are_discovered(plugin_dir):
    names = verifiers.available()
    assert names["likes7"] == "Reward 1 for replies containing a 7."
    assert verifiers.get("likes7").verify("17", ex("1")).ok
    assert safe_verify(verifiers.get("boom"), "x", ex("1")).details["error"] == "ValueError: plugin bug"
