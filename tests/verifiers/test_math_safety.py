"""Hostile answers: each gets a verdict within its bound, and nothing in it ever runs."""

import builtins
import time
from types import SimpleNamespace

import pytest
import sympy.parsing.sympy_parser

from reasoner.verifiers.math_answer import MathVerifier
from reasoner.verifiers.math_answer.compare import compare

TIMEOUT = 2.0
SENTINEL = "/tmp/reasoner-math-verifier-injection-marker"

INJECTIONS = [
    f"__import__('os').system('touch {SENTINEL}')",
    f"__import__(\"os\").system(\"touch {SENTINEL}\")",
    "eval('1+1')",
    "exec('import os')",
    "lambda: __import__('os')",
    "().__class__.__bases__[0].__subclasses__()",
    "open('/etc/passwd').read()",
    "Symbol('x').__init__",
    "\\input{/etc/passwd}",
    "\\immediate\\write18{touch " + SENTINEL + "}",
    "1; import os",
    "x if True else y",
    "globals()",
]
BOMBS = [
    "9^{9^{9^{9}}}",
    "10^{10^{10}}!",
    "(10^{100})!",
    "2^{2^{2^{2^{2^{2}}}}}",
    "\\binom{10^{9}}{5 \\cdot 10^{8}}",
    "(x+1)^{999999} - (x+1)^{999998}",
    "(a+b+c+d+e+f+g)^{60}",
    "\\sin(10^{4999})",
    "e^{e^{e^{e^{10}}}}",
    "x^{x^{x^{x^{x^{x^{x}}}}}}",
]
HUGE = [
    "1+" * 50_000 + "1",                      # 100 KB
    "x" * 100_000,
    "{" * 5_000 + "1" + "}" * 5_000,          # deeply nested braces
    "\\frac{" * 300 + "1" + "}{2}" * 300,
    "(" * 400 + "1" + ")" * 400,
    "\\sqrt{" * 200 + "2" + "}" * 200,
    "1," * 30_000,
]
INVALID_UTF8 = [
    b"\\boxed{\xff\xfe1}",
    b"\\boxed{\xc3\x28}",
    "\\boxed{1\udcff}",                       # a lone surrogate, as surrogateescape leaves it
]


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(workers=2, timeout=TIMEOUT) as v:
        yield v


@pytest.mark.parametrize("answer", INJECTIONS + BOMBS + HUGE, ids=lambda a: a[:30])
def test_hostile_answer_gets_a_verdict_in_bound(verifier, answer):
    example = SimpleNamespace(id="x", reference="2", meta={})
    start = time.monotonic()
    verdict = verifier.verify("The answer is \\boxed{" + answer + "}", example)
    assert time.monotonic() - start < TIMEOUT + 1.5
    assert verdict.reason in ("wrong", "unparsable", "timeout")
    assert verdict.reward == 0.0


@pytest.mark.parametrize("completion", INVALID_UTF8, ids=repr)
def test_invalid_utf8_gets_a_verdict(verifier, completion):
    verdict = verifier.verify(completion, SimpleNamespace(id="u", reference="1", meta={}))
    assert verdict.reason == "unparsable"


def test_hostile_reference_is_a_verdict_too(verifier):
    verdict = verifier.check("1", INJECTIONS[0])
    assert verdict.reason == "unparsable" and verdict.details["side"] == "reference"


def test_nothing_runs(monkeypatch, tmp_path):
    """In this process: no eval, exec or sympy string parsing is reached, and no file appears."""
    import os
    calls = []
    for name in ("eval", "exec", "compile", "__import__"):
        original = getattr(builtins, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            if _name != "__import__" or (args and args[0] == "os" and len(args) > 1 and args[1] is None):
                calls.append(_name)
            return _original(*args, **kwargs)
        monkeypatch.setattr(builtins, name, spy)

    def no_parse_expr(*args, **kwargs):
        calls.append("parse_expr")
        raise AssertionError("parse_expr reached")
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", no_parse_expr)
    for answer in INJECTIONS:
        for a, r in ((answer, "2"), ("2", answer), (answer, answer + " ")):
            reason, _ = compare(a, r)
            assert reason in ("wrong", "unparsable", "correct")
    assert [c for c in calls if c != "__import__"] == []
    assert not os.path.exists(SENTINEL)


def test_no_string_parsing_on_any_labelled_pair(monkeypatch):
    """sympy's own string parser is never reached, on hostile or ordinary answers alike."""
    import json
    from pathlib import Path

    from reasoner.verifiers.math_answer import compare as compare_module

    def no_parse_expr(*args, **kwargs):
        raise AssertionError(f"parse_expr reached with {args[:1]!r}")
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", no_parse_expr)
    compare_module._parse.cache_clear()
    pairs = [json.loads(line) for line in open(Path(__file__).parent / "data" / "math_pairs.jsonl", encoding="utf-8")]
    for p in pairs:
        reason, details = compare(p["answer"], p["reference"])
        assert reason != "verifier_error", (p, details)
