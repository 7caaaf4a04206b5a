"""The bundled code task: seeded problems, disjoint splits, hidden tests that a correct function
passes in the real sandbox and that a wrong, hard-coded or always-equal reply does not."""

from __future__ import annotations

import pytest

from reasoner import tasks
from reasoner.tasks import TaskError
from reasoner.tasks.code import FAMILIES, TEMPLATES
from reasoner.verifiers.code import CodeVerifier
from tests.conftest import require_docker


def key(ex):
    return ex.meta["template"], tuple(sorted(ex.meta["params"].items()))


def test_problems_are_seeded_and_the_splits_disjoint():
    train, test = tasks.load("code"), tasks.load("code", split="test")
    assert (len(train), len(test), train.split, test.split) == (2000, 100, "train", "test")
    assert not {key(e) for e in train} & {key(e) for e in test}
    assert [e.prompt for e in tasks.load("code")] == [e.prompt for e in train]
    assert [e.prompt for e in tasks.load("code:seed=1", split="test")] != [e.prompt for e in test]
    assert {e.meta["family"] for e in test} == set(FAMILIES)
    assert {e.meta["level"] for e in train} == {1, 2}


def test_a_prompt_names_the_function_and_asks_for_a_fenced_block():
    for ex in tasks.load("code:levels=123", split="test"):
        name = ex.reference["entry_point"]
        assert f"`{name}(" in ex.prompt and "```python" in ex.prompt and "For example" in ex.prompt
        lines = ex.reference["tests"].splitlines()
        assert len(lines) == 5 and all(line.startswith(f"assert {name}(") for line in lines)
        assert ex.verifier == "code"
        shown = ex.prompt.split("For example, `")[1].split("`")[0]
        assert all(f"assert {shown} ==" not in line for line in lines)  # the example call is not a hidden test


def test_options_filter_and_are_checked():
    easy = tasks.load("code:levels=1,families=numbers+lists,size=50,test_size=20")
    assert {e.meta["level"] for e in easy} == {1} and {e.meta["family"] for e in easy} == {"numbers", "lists"}
    assert "For example" not in tasks.load("code:example=0,size=3")[0].prompt
    assert all(len(e.reference["tests"].splitlines()) == 2 for e in tasks.load("code:tests=2,size=5"))
    for spec, message in [("code:levels=4", "levels"), ("code:families=poems", "families"),
                          ("code:colour=red", "unknown option"), ("code:tests=x", "integer"),
                          ("code:levels=3,families=dicts", "no problem template"),
                          ("code:levels=1,families=dicts,test_size=50", "distinct problems")]:
        with pytest.raises(TaskError, match=message):
            tasks.load(spec)


def test_every_template_has_several_problems():
    assert len({t.key for t in TEMPLATES}) == len(TEMPLATES)
    assert all(len(t.params()) >= 2 for t in TEMPLATES)


SOLUTIONS = {  # a correct reply per template, as a chat model writes it (prose, then a fenced block)
    "mul": "def multiply(n):\n    return n * {k}\n",
    "first": "def first_chars(s):\n    return s[:{k}]\n",
    "keys_gt": "def keys_above(d):\n    return sorted(k for k, v in d.items() if v > {k})\n",
    "fizz": ("def fizzbuzz(n):\n    if n % {a} == 0 and n % {b} == 0:\n        return 'FizzBuzz'\n"
             "    if n % {a} == 0:\n        return 'Fizz'\n    if n % {b} == 0:\n        return 'Buzz'\n"
             "    return str(n)\n"),
}


def _first(template: str):
    return next(e for e in tasks.load("code:levels=123", split="test") if e.meta["template"] == template)


@pytest.mark.docker
def test_correct_replies_pass_and_cheating_ones_do_not(pool):
    require_docker()
    verifier = CodeVerifier(sandbox=pool)
    replies, examples = [], []
    for template, body in SOLUTIONS.items():
        ex = _first(template)
        replies.append(f"Here is the function:\n\n```python\n{body.format(**ex.meta['params'])}```\n")
        examples.append(ex)
    mul = _first("mul")
    shown_value = mul.prompt.split("` returns `")[1].split("`")[0]
    attacks = [
        "```python\ndef multiply(n):\n    return n * 2 + 1\n```",  # wrong
        f"```python\ndef multiply(n):\n    return {shown_value}\n```",  # the prompt's example, hard-coded
        "```python\nclass Same:\n    def __eq__(self, other):\n        return True\n\n"
        "def multiply(n):\n    return Same()\n```",  # equal to everything
        "```python\nimport sys\ndef multiply(n):\n    sys.exit(0)\n```",  # leave before the asserts fail
        "I cannot write that function.",
    ]
    verdicts = verifier.verify_batch(replies + attacks, examples + [mul] * len(attacks))
    assert [v.reason for v in verdicts[:len(replies)]] == ["correct"] * len(replies), verdicts
    assert [v.reward for v in verdicts[len(replies):]] == [0.0] * len(attacks), verdicts
    assert verdicts[-1].reason == "no_code"
