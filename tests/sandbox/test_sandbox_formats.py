"""Test formats and statuses, through real containers: function tests (HumanEval ``check``,
MBPP asserts), stdin/stdout cases (Python and C++), and what crosses the process boundary."""

from __future__ import annotations

import textwrap

import pytest

from reasoner.sandbox import Case, FunctionTests, Job, Limits, StdioTests

pytestmark = pytest.mark.docker

ADD = "def add(a, b):\n    return a + b\n"


def test_humaneval_check_is_called_with_the_entry_point(pool):
    tests = "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"
    assert pool.run(ADD, FunctionTests(tests, "add")).status == "passed"
    missing = pool.run(ADD, FunctionTests(tests, "plus"))
    assert missing.status == "failed" and "plus" in missing.details["error"]


def test_mbpp_asserts_call_functions_by_name(pool):
    tests = "assert add(1, 2) == 3\nassert add([1], [2]) == [1, 2]\nassert add((1,), (2,)) == (1, 2)"
    assert pool.run(ADD, FunctionTests(tests)).status == "passed"
    run = pool.run(ADD, FunctionTests("assert add(1, 2) == 3\nassert add(2, 2) == 5\nassert add(0, 0) == 0"))
    assert run.status == "failed"
    assert (run.details["test_line"], run.details["test"]) == (2, "assert add(2, 2) == 5")
    assert run.details["calls"] == 2  # the third assert never ran


def test_tests_that_never_call_the_program_do_not_pass(pool):
    assert pool.run(ADD, FunctionTests("assert True")).status == "failed"


def test_values_cross_as_plain_data(pool):
    program = textwrap.dedent("""
        import collections, math
        Point = collections.namedtuple('Point', 'x y')
        def values():
            return [None, True, 3, 2.5, float('inf'), 'é', b'\\x00', (1,), {1, 2}, frozenset([3]),
                    {(1, 2): 'tuple key'}, 1j, range(3), 10 ** 400, -(10 ** 5000)]
        def point():
            return Point(1, 2)
        def counts():
            return collections.Counter('aab')
        def gen():
            return (i * i for i in range(4))
        def nan():
            return math.nan
        """)
    tests = textwrap.dedent("""
        import math
        assert values() == [None, True, 3, 2.5, float('inf'), 'é', b'\\x00', (1,), {1, 2}, frozenset([3]),
                            {(1, 2): 'tuple key'}, 1j, range(3), 10 ** 400, -(10 ** 5000)]
        assert point() == (1, 2) and type(point()) is tuple
        assert counts() == {'a': 2, 'b': 1}
        g = gen()
        assert g != [0, 1, 4, 9] and list(g) == [0, 1, 4, 9]
        assert math.isnan(nan())
        """)
    run = pool.run(program, FunctionTests(tests))
    assert run.status == "passed", run


def test_objects_stay_in_the_program_and_answer_as_data(pool):
    program = textwrap.dedent("""
        class Pair:
            def __init__(self, a, b):
                self.a, self.b = a, b
            def total(self):
                return self.a + self.b
            def __len__(self):
                return 2
            def __str__(self):
                return f'Pair({self.a}, {self.b})'
        def longest(pairs):
            return max(p.total() for p in pairs)
        """)
    tests = textwrap.dedent("""
        p = Pair(1, 2)
        assert p.a == 1 and p.total() == 3 and len(p) == 2 and str(p) == 'Pair(1, 2)'
        assert longest([Pair(5, 24), Pair(15, 25), p]) == 40
        assert p == p and p != Pair(1, 2)   # identity: never the program's __eq__
        """)
    run = pool.run(program, FunctionTests(tests))
    assert run.status == "passed", run


def test_exceptions_the_tests_expect(pool):
    program = "def inv(x):\n    if x == 0:\n        raise ValueError('zero')\n    return 1 / x\n"
    tests = textwrap.dedent("""
        try:
            inv(0)
            raise AssertionError('no error')
        except ValueError as e:
            assert str(e) == 'zero'
        """)
    assert pool.run(program, FunctionTests(tests + "assert inv(2) == 0.5")).status == "passed"
    unexpected = pool.run(program, FunctionTests("assert inv(0) == 0"))
    assert unexpected.status == "runtime_error"
    assert "ValueError: zero" in unexpected.details["error"]
    assert "raise ValueError('zero')" in unexpected.stderr  # the program's traceback, as Python shows it


def test_broken_tests_are_a_sandbox_error(pool):
    run = pool.run(ADD, FunctionTests("assert add(1, 2) == 3 +"))
    assert run.status == "sandbox_error" and "the tests do not compile" in run.details["error"]


def test_load_failures(pool):
    syntax = pool.run("def add(a, b)\n    return a + b\n", FunctionTests("assert add(1, 2) == 3"))
    assert syntax.status == "compile_error"
    assert syntax.details["error"]["line"] == 1
    crash = pool.run("import no_such_module\n" + ADD, FunctionTests("assert add(1, 2) == 3"))
    assert crash.status == "runtime_error" and crash.details["phase"] == "load"


def test_stdio_cases_compare_tokens(pool):
    program = "a, b = map(int, input().split())\nprint(a + b)\n"
    cases = (Case("1 2\n", "3\n"), Case("10 20", "  30  "), Case("2 2", "4\r\n\n"))
    run = pool.run(program, StdioTests(cases))
    assert run.status == "passed", run
    assert run.details["cases"] == 3
    wrong = pool.run(program, StdioTests((Case("1 2", "3"), Case("2 2", "5"), Case("0 0", "0"))))
    assert wrong.status == "failed"
    assert (wrong.details["case"], wrong.details["expected"], wrong.stdout) == (1, "5", "4\n")


def test_stdio_statuses(pool):
    assert pool.run("import sys\nsys.exit(3)\n", StdioTests((Case("", ""),))).status == "runtime_error"
    assert pool.run("raise ValueError\n", StdioTests((Case("", ""),))).status == "runtime_error"
    assert pool.run("print(\n", StdioTests((Case("", ""),))).status == "compile_error"
    timeout = pool.run("while True:\n    pass\n", StdioTests((Case("", ""),)), Limits(timeout=1.0))
    assert timeout.status == "timeout"


def test_stdio_program_sees_a_fresh_process_per_case(pool):
    program = "import os\nopen('/tmp/seen', 'a').write('x')\nprint(len(open('/tmp/seen').read()))\n"
    # the work dir persists across the cases of one job (one program), but each case is a new process
    run = pool.run(program, StdioTests((Case("", "1"), Case("", "2"))))
    assert run.status == "passed", run


def test_threads_finish_before_a_stdio_program_exits(pool):
    program = ("import threading, sys\nsys.setrecursionlimit(10**6)\nthreading.stack_size(1 << 26)\n"
               "def main():\n    print(sum(range(int(input()))))\nthreading.Thread(target=main).start()\n")
    assert pool.run(program, StdioTests((Case("5", "10"),))).status == "passed"


def test_cpp_stdio(pool):
    if not pool.runner_info().get("cpp"):
        pytest.skip("this image has no g++")
    program = "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }\n"
    run = pool.run(program, StdioTests((Case("1 2", "3"), Case("40 2", "42"))), language="cpp")
    assert run.status == "passed", run
    broken = pool.run("int main() { return x; }", StdioTests((Case("", ""),)), language="cpp")
    assert broken.status == "compile_error" and "x" in broken.details["error"]["message"]
    crash = pool.run("int main() { return 3; }", StdioTests((Case("", ""),)), language="cpp")
    assert crash.status == "runtime_error"


def test_run_without_tests_passes_on_a_clean_exit(pool):
    run = pool.run("print('hello')\n")
    assert (run.status, run.stdout) == ("passed", "hello\n")
    assert pool.run("raise SystemExit(1)\n").status == "runtime_error"


def test_jobs_run_concurrently(pool):
    slow = Job("import time\ndef f():\n    time.sleep(0.5)\n    return 1\n", FunctionTests("assert f() == 1"))
    import time
    t = time.monotonic()
    runs = pool.run_many([slow] * 4)
    assert [r.status for r in runs] == ["passed"] * 4
    assert time.monotonic() - t < 1.9  # 4 x 0.5 s on 2 containers


def test_a_job_cannot_ask_for_more_memory_than_the_pool_has(pool):
    run = pool.run(ADD, FunctionTests("assert add(1, 2) == 3"), Limits(memory_mb=pool.limits.memory_mb * 2))
    assert run.status == "sandbox_error" and "Sandbox" in run.details["error"]
