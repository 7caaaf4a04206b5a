"""The ``code`` verifier: extraction and references without Docker, verdicts with it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from reasoner import verifiers
from reasoner.verifiers.code import CodeVerifier, code_blocks, extract_code


@dataclass
class Ex:
    reference: object
    id: str = "x"
    meta: dict = field(default_factory=dict)


ADD_TESTS = Ex({"tests": "def check(candidate):\n    assert candidate(2, 3) == 5\n", "entry_point": "add"})
REPLY = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nUsage:\n```bash\npython add.py\n```\n"


# ---- without Docker ------------------------------------------------------------------------------

def test_registered_as_a_plugin():
    assert "code" in verifiers.available()
    verifier = verifiers.get("code", timeout=3)
    assert isinstance(verifier, CodeVerifier) and verifier.limits.timeout == 3


def test_code_blocks():
    text = "a\n```py\nx = 1\n```\n~~~\ny = 2\n~~~\n````python\nz = '```'\n````\n```cpp\nint main(){}\n"
    assert code_blocks(text) == [("py", "x = 1\n"), ("", "y = 2\n"), ("python", "z = '```'\n"),
                                 ("cpp", "int main(){}\n")]


def test_extraction_modes():
    reply = "```python\nfirst = 1\n```\ntext\n```\nlast = 2\n```\n```text\noutput\n```"
    assert extract_code(reply) == "last = 2\n"             # the last block in the language (or untagged)
    assert extract_code(reply, "first_block") == "first = 1\n"
    assert extract_code(reply, "whole") == reply
    assert extract_code("no code at all") is None
    assert extract_code("```python\ndef f(): pass\n```", language="cpp") is None
    assert extract_code("```python\ndef f():\n    return 1") == "def f():\n    return 1\n"  # cut off at the end


def test_verdicts_that_need_no_sandbox():
    verifier = CodeVerifier(sandbox=object())  # never used: nothing to run
    assert verifier.verify("I don't know.", ADD_TESTS).reason == "no_code"
    for bad in (None, "assert x", {"tests": ""}, {"cases": []}, {"cases": [{"input": "1"}]}, {"tests": 3},
                {"tests": "assert f()", "entry_point": 1}, {"tests": "assert f()", "language": "cobol"}):
        verdict = verifier.verify(REPLY, Ex(bad))
        assert (verdict.reward, verdict.reason) == (0.0, "bad_reference"), bad


def test_docker_unreachable_is_a_sandbox_error_verdict(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    verifier = CodeVerifier()
    try:
        verdicts = verifier.verify_batch([REPLY, "no code"], [ADD_TESTS, ADD_TESTS])
    finally:
        verifier.close()
    assert [v.reason for v in verdicts] == ["sandbox_error", "no_code"]
    assert verdicts[0].reward == 0.0 and verdicts[0].details["sandbox_error"] is True
    assert "start the Docker engine" in verdicts[0].details["error"]


# ---- with Docker ---------------------------------------------------------------------------------

@pytest.mark.docker
def test_rewards(pool):
    verifier = CodeVerifier(sandbox=pool)
    mbpp = Ex({"tests": ["assert add(1, 1) == 2", "assert add(0, 5) == 5"]})
    stdio = Ex({"cases": [{"input": "2 3\n", "output": "5\n"}]})
    cpp = Ex({"cases": [{"input": "2 3", "output": "5"}], "language": "cpp"})
    prefixed = Ex({"tests": "assert add(2, 2) == 4", "prefix": "def add(a, b):\n"})
    replies = [REPLY, REPLY.replace("a + b", "a - b"), REPLY, "```python\na, b = map(int, input().split())\n"
               "print(a + b)\n```", "```cpp\n#include <iostream>\nint main(){int a,b;std::cin>>a>>b;"
               "std::cout<<a+b;}\n```", "    return a + b\n", "```python\nwhile True: pass\n```"]
    examples = [ADD_TESTS, ADD_TESTS, mbpp, stdio, cpp, prefixed, Ex({"tests": "assert f()", "timeout": 1})]
    verdicts = CodeVerifier(sandbox=pool, extract="last_block").verify_batch(replies[:5], examples[:5])
    verdicts += CodeVerifier(sandbox=pool, extract="whole").verify_batch(replies[5:6], examples[5:6])
    verdicts += verifier.verify_batch(replies[6:], examples[6:])
    assert [(v.reward, v.reason) for v in verdicts] == [
        (1.0, "correct"), (0.0, "failed"), (1.0, "correct"), (1.0, "correct"), (1.0, "correct"), (1.0, "correct"),
        (0.0, "timeout")]
    assert verdicts[1].details["test"] == "assert candidate(2, 3) == 5"


@pytest.mark.docker
def test_verify_batch_runs_concurrently(pool):
    slow = "```python\nimport time\ndef add(a, b):\n    time.sleep(0.5)\n    return a + b\n```"
    t = time.monotonic()
    verdicts = CodeVerifier(sandbox=pool).verify_batch([slow] * 4, [ADD_TESTS] * 4)
    assert [v.reward for v in verdicts] == [1.0] * 4
    assert time.monotonic() - t < 1.9  # 4 x 0.5 s on 2 containers
