"""The `math` plugin's public surface: registry, extraction settings, verdicts and their details."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from reasoner import verifiers
from reasoner.verifiers.math_answer import MathVerifier


def ex(reference, **meta):
    return SimpleNamespace(id="e", reference=reference, meta=meta)


@pytest.fixture(scope="module")
def v():
    with MathVerifier() as verifier:
        yield verifier


def test_registered_as_the_math_plugin():
    verifier = verifiers.get("math", strategies="boxed")
    assert isinstance(verifier, MathVerifier) and verifier.strategies == ("boxed",)
    assert "math" in verifiers.available()


def test_verdict_reasons_and_details(v):
    correct = v.verify(r"so $\boxed{\frac{2}{4}}$", ex("0.5"))
    assert (correct.reward, correct.ok, correct.reason) == (1.0, True, "correct")
    assert correct.details["extracted"] == r"\frac{2}{4}" and correct.details["strategy"] == "boxed"
    assert correct.details["rule"] == "number"
    wrong = v.verify(r"\boxed{x^2}", ex("x^3"))
    assert (wrong.reward, wrong.reason) == (0.0, "wrong")
    assert wrong.details["answer_normalized"] == "x**2" and wrong.details["reference_normalized"] == "x**3"
    assert v.verify("I do not know", ex("1")).reason == "no_answer"
    unparsable = v.verify(r"\boxed{1 +* }", ex("1"))
    assert unparsable.reason == "unparsable" and "error" in unparsable.details


def test_extraction_strategies_per_verifier_and_per_example():
    with MathVerifier(strategies=("boxed",), workers=0) as strict, MathVerifier(strategies=["boxed", "hash"], workers=0) as gsm:
        reply = "She has 5 apples.\n#### 5"
        assert strict.verify(reply, ex("5")).reason == "no_answer"
        assert gsm.verify(reply, ex("5")).ok
        assert strict.verify(reply, ex("5", extract=["hash"])).ok          # meta["extract"] wins
        assert strict.verify("so 5", ex("5", extract="last_number")).ok
    with pytest.raises(ValueError, match="unknown extraction"):
        MathVerifier(strategies="guess")


def test_equivalent_and_check(v):
    assert v.equivalent(r"\frac12", "0.5")
    assert not v.equivalent(r"\frac{1}{3}", "0.33")
    assert v.check("[2,5)", r"x \in [2, 5)").details["rule"] == "interval"


def test_rel_tol_is_configurable():
    with MathVerifier(rel_tol=1e-2, workers=0) as loose, MathVerifier(rel_tol=0, workers=0) as exact:
        assert loose.equivalent("0.33", r"\frac{1}{3}")
        assert not exact.equivalent("0.3333333", r"\frac{1}{3}")
        assert exact.equivalent("0.5", r"\frac{1}{2}")
    with MathVerifier(workers=0) as default:
        assert default.equivalent("0.333333", r"\frac{1}{3}")      # 6 digits, off by less than the last one
        assert not default.equivalent("0.333", r"\frac{1}{3}")
        assert not default.equivalent(r"3 \cdot 10^{-20}", r"\pi \cdot 10^{-20}")  # relative, even when tiny


def test_references_of_other_types(v):
    assert v.verify(r"\boxed{27}", ex(27.0)).ok                 # AMC stores numbers
    assert v.verify(r"\boxed{3}", ex(3)).ok
    assert v.verify(r"\boxed{2/3}", ex(["0.5", r"\frac{2}{3}"])).ok   # any of several references
    assert v.verify(b"\\boxed{4}", ex("4")).ok                   # bytes are decoded


def test_batch_keeps_order_and_skips_the_pool_for_plain_numbers():
    with MathVerifier() as verifier:
        verdicts = verifier.verify_batch([r"\boxed{1}", r"\boxed{2.0}", "none", r"\boxed{-3/4}"],
                                         [ex("1"), ex("2"), ex("3"), ex("-0.75")])
        assert [x.reason for x in verdicts] == ["correct", "correct", "no_answer", "correct"]
        assert verifier._pool is None                            # decided in this process
        assert verifier.verify(r"\boxed{\sqrt{4}}", ex("2")).ok
        assert verifier._pool is not None                        # started on first need
    assert verifier._pool is None                                # closed by the context manager
    with pytest.raises(ValueError):
        MathVerifier().verify_batch(["a"], [])


def test_in_process_mode_and_its_time_bound():
    with MathVerifier(workers=0, timeout=1e-4) as inline:
        assert inline.verify(r"\boxed{\sin^2 x + \cos^2 x}", ex("1")).reason == "timeout"
    with MathVerifier(workers=0) as inline:
        assert inline.verify(r"\boxed{\sin^2 x + \cos^2 x}", ex("1")).ok


def test_pool_timeout_is_a_verdict():
    with MathVerifier(timeout=1e-3) as hurried:
        verdict = hurried.verify(r"\boxed{\frac{\sin^2 x + \cos^2 x}{\tan y \cot y}}", ex("1"))
    assert verdict.reason == "timeout" and verdict.details["bound"] == "time"


def test_bad_settings_are_refused():
    for bad in ({"timeout": 0}, {"workers": -1}, {"memory_mb": 1}, {"rel_tol": -1}):
        with pytest.raises(ValueError):
            MathVerifier(**bad)


def test_verifiers_import_no_torch():
    code = "import sys, verifiers.math_answer, verifiers.math_answer.compare; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
