"""Which code of a reply runs (``extract="defining"``, the default) and the reward modes: the
reply shapes chat models write, the shapes a policy could exploit, and partial credit."""

from __future__ import annotations

import time

import pytest

from reasoner.sandbox import CallTests, FunctionTests, PytestTests, StdioTests, Case
from reasoner.verifiers.code import CodeVerifier
from reasoner.verifiers.code_extract import MAX_BLOCKS, extract_code, wanted_names


class Ex:
    def __init__(self, reference):
        self.reference = reference


ADD = "def add(a, b):\n    return a + b\n"
NAMES = frozenset({"add"})


def defining(reply, names=NAMES):
    return extract_code(reply, "defining", "python", names)


def test_function_then_usage_example_runs_the_function_only():
    reply = f"Here it is:\n```python\n{ADD}```\nExample usage:\n```python\nprint(add(2, 3))  # 5\nadd(\n```\n"
    assert defining(reply) == ADD
    assert extract_code(reply, "last_block") == "print(add(2, 3))  # 5\nadd(\n"  # what last_block would run


def test_common_reply_shapes():
    assert defining(f"The idea is to add.\n\n```py\n{ADD}```") == ADD                          # explanation, then code
    assert defining(f"```python3\n{ADD}") == ADD                                                # unclosed block
    assert defining(f"```\n{ADD}```\n```text\nadd(1, 2) -> 3\n```") == ADD                      # untagged + text
    helper = "```python\nimport math\n\ndef half(x):\n    return x / 2\n\nprint(half(4))\n```\n"
    main = "```python\ndef add(a, b):\n    return half(a) + half(b) + math.pi * 0\n```\n"
    code = defining(helper + main)
    assert code.startswith("import math\n\ndef half(x):") and "print(half(4))" not in code
    assert code.endswith(main.split("\n", 1)[1].rsplit("```", 1)[0])
    assert defining("no code here") is None
    # no block defines a tested name (stdin/stdout programs, a lambda): the last block, as last_block
    assert defining("```python\nadd = lambda a, b: a + b\n```\n```python\nprint(1)\n```") == "add = lambda a, b: a + b\n"
    assert defining("```python\nx = 1\n```\n```python\nprint(2)\n```") == "print(2)\n"


def test_exploit_shapes():
    patch = "```python\nimport builtins\nbuiltins.AssertionError = type('Nothing', (Exception,), {})\n```\n"
    assert defining(patch + f"```python\n{ADD}```") == ADD                # the patching block does not run
    wrong = ADD.replace("a + b", "a - b")
    assert defining(f"```python\n{ADD}```\n```python\n{wrong}```") == wrong   # the last definition wins, as in a file
    assert defining(f"```python\n{wrong}```\n```python\n{ADD}```") == ADD
    nested = f"````markdown\n```python\n{ADD}```\n````\n"                  # a Python block inside a markdown block
    assert defining(nested) is None
    many = "".join(f"```python\nx{i} = {i}\n```\n" for i in range(20_000)) + f"```python\n{ADD}```"
    started = time.monotonic()
    assert defining(many) == ADD
    assert time.monotonic() - started < 60  # linear in the reply (quadratic would take hours), even on a loaded machine
    early = f"```python\n{ADD}```\n" + "".join(f"```python\nx{i} = {i}\n```\n" for i in range(MAX_BLOCKS))
    assert defining(early) == f"x{MAX_BLOCKS - 1} = {MAX_BLOCKS - 1}\n"  # only the last MAX_BLOCKS blocks count


def test_names_the_tests_call():
    assert wanted_names(FunctionTests("def check(c):\n    assert c(1)\n", "add")) == {"add"}
    assert wanted_names(FunctionTests("import math\nassert add(1, 2) == 3\nassert math.isclose(sub(1, 1), 0)")) \
        == {"add", "sub"}
    assert wanted_names(CallTests("twoSum", [[1]], [1], class_name="Solution")) == {"Solution"}
    assert wanted_names(PytestTests("from solution import a, b\nimport solution\ndef test():\n    solution.c()\n")) \
        == {"a", "b", "c"}
    assert wanted_names(StdioTests([Case("", "")])) == {"<stdin>"}


def test_options_are_checked():
    with pytest.raises(ValueError, match="reward must be one of binary, fraction"):
        CodeVerifier(reward="most")
    with pytest.raises(ValueError, match="extract must be one of defining"):
        CodeVerifier(extract="best")
    assert CodeVerifier().extract == "defining" and CodeVerifier().reward == "binary"


# ---- with Docker ---------------------------------------------------------------------------------

@pytest.mark.docker
def test_defining_rule_through_the_sandbox(pool):
    mbpp = Ex({"tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]})
    usage = f"```python\n{ADD}```\nUsage:\n```python\nprint(add(1, 2))\n```"
    patched = ("```python\nimport builtins\nbuiltins.print = None\nraise SystemExit(0)\n```\n"
               f"```python\n{ADD.replace('a + b', 'a - b')}```\n")
    verdicts = CodeVerifier(sandbox=pool).verify_batch([usage, patched], [mbpp, mbpp])
    assert [(v.reward, v.reason) for v in verdicts] == [(1.0, "correct"), (0.0, "failed")]
    old = CodeVerifier(sandbox=pool, extract="last_block").verify(usage, mbpp)
    assert old.reason == "runtime_error"  # the usage block alone: NameError


@pytest.mark.docker
def test_fraction_reward_for_each_kind(pool):
    half = "```python\ndef add(a, b):\n    return a + b if a else 0\n```"
    examples = [
        Ex({"tests": ["assert add(1, 2) == 3", "assert add(0, 5) == 5", "assert add(2, 2) == 4", "assert add(0, 1) == 1"]}),
        Ex({"fn_name": "add", "inputs": [[1, 2], [0, 5], [2, 2], [0, 1]], "outputs": [3, 5, 4, 1]}),
        Ex({"pytest": "from solution import add\n\ndef test_a():\n    assert add(1, 2) == 3\n\n"
                      "def test_b():\n    assert add(0, 5) == 5\n\ndef test_c():\n    assert add(2, 2) == 4\n\n"
                      "def test_d():\n    assert add(0, 1) == 1\n"}),
    ]
    stdio = Ex({"cases": [{"input": "1 2", "output": "3"}, {"input": "0 5", "output": "5"},
                          {"input": "2 2", "output": "4"}, {"input": "0 1", "output": "1"}]})
    reader = "```python\na, b = map(int, input().split())\nprint(a + b if a else 0)\n```"
    fraction = CodeVerifier(sandbox=pool, reward="fraction")
    binary = CodeVerifier(sandbox=pool)
    replies, every = [half] * 3 + [reader], [*examples, stdio]
    got = fraction.verify_batch(replies, every)
    assert [(v.reward, v.ok, v.details["tests_passed"], v.details["tests_total"]) for v in got] == \
        [(0.5, False, 2, 4)] * 4
    assert [v.reward for v in binary.verify_batch(replies, every)] == [0.0] * 4
    right = "```python\n" + ADD + "```"
    assert [(v.reward, v.ok) for v in fraction.verify_batch([right] * 3, examples)] == [(1.0, True)] * 3


@pytest.mark.docker
def test_fraction_reward_cannot_be_inflated(pool):
    tests = Ex({"tests": ["assert add(1, 2) == 3", "assert add(2, 2) == 4"]})
    inflating = ("```python\ndef add(a, b):\n    return 3\n\nfor _ in range(100):\n    assert True\n\n"
                 "def test_x():\n    pass\n\ncheck = lambda c: None\n```")
    verdict = CodeVerifier(sandbox=pool, reward="fraction").verify(inflating, tests)
    assert (verdict.reward, verdict.details["tests_total"]) == (0.5, 2)
    gone = "```python\nimport os\ndef add(a, b):\n    os._exit(0)\n```"
    assert CodeVerifier(sandbox=pool, reward="fraction").verify(gone, tests).reward == 0.0


def test_stdin_programs_are_the_last_block_that_reads_input():
    stdin = wanted_names(StdioTests([Case("", "")]))
    program = "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n"
    assert extract_code(f"```python\n{program}```\nRun it:\n```python\nprint('demo')\n```", "defining", "python",
                        stdin) == program
    assert extract_code("```python\nn = int(input())\n```\n```python\nprint(open(0).read())\n```", "defining",
                        "python", stdin) == "print(open(0).read())\n"
    assert extract_code("```python\nprint(1)\n```\n```python\nprint(2)\n```", "defining", "python", stdin) == "print(2)\n"
