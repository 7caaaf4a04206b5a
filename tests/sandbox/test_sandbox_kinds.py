"""Call-based tests (APPS/TACO ``fn_name``, LeetCode ``Solution().f``), pytest-style tests (KodCode)
and the tests-passed counts of every kind, through real containers: correct programs beside
programs that try to fake a pass."""

from __future__ import annotations

import textwrap

import pytest

from reasoner.sandbox import Case, CallTests, FunctionTests, Job, PytestTests, StdioTests

pytestmark = pytest.mark.docker

ADD = "def add(a, b):\n    return a + b\n"
PAIRS = CallTests("pair", [[1, 2], ["a", [3]]], [[1, 2], ["a", [3]]])


def run(pool, program, tests, all_tests=False):
    return pool.submit(Job(program, tests, all_tests=all_tests)).result()


def counts(execution):
    return execution.details.get("tests_passed"), execution.details.get("tests_total")


# ---- call-based ------------------------------------------------------------------------------------

def test_calls_compare_results_as_data(pool):
    tests = CallTests("add", [[1, 2], [[1], [2]], [0.1, 0.2], ["a", "b"]], [3, [1, 2], 0.3, "ab"])
    done = run(pool, ADD, tests)
    assert done.status == "passed" and counts(done) == (4, 4), done
    assert run(pool, "def pair(a, b):\n    return (a, (b))\n", PAIRS).status == "passed"  # tuples equal lists
    wrong = run(pool, "def add(a, b):\n    return a - b\n", tests)
    assert wrong.status == "failed" and wrong.details["case"] == 0 and counts(wrong) == (0, 4)
    assert run(pool, "def add(a, b):\n    return 3.0000001\n", CallTests("add", [[1, 2]], [3])).status == "passed"
    assert run(pool, "def add(a, b):\n    return 3.01\n", CallTests("add", [[1, 2]], [3])).status == "failed"
    assert run(pool, "def add(a, b):\n    return True\n", CallTests("add", [[0, 1]], [1])).status == "failed"
    assert run(pool, "def add(a, b):\n    return 1\n", CallTests("add", [[0, 1]], [True])).status == "failed"


def test_calls_on_a_fresh_solution_instance(pool):
    program = textwrap.dedent("""
        class Solution:
            calls = 0
            def twoSum(self, nums, target):
                Solution.calls += 1
                seen = {}
                for i, x in enumerate(nums):
                    if target - x in seen:
                        return [seen[target - x], i]
                    seen[x] = i
        """)
    tests = CallTests("twoSum", [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]], [[0, 1], [1, 2]], class_name="Solution")
    assert run(pool, program, tests).status == "passed"
    missing = run(pool, ADD, tests)
    assert missing.status == "failed" and "Solution" in missing.details["error"]


def test_apps_outputs_wrapped_in_a_list_are_accepted_only_when_asked(pool):
    tests = CallTests("add", [[1, 2]], [[3]])
    assert run(pool, ADD, tests).status == "failed"
    assert run(pool, ADD, CallTests("add", [[1, 2]], [[3]], unwrap_outputs=True)).status == "passed"


@pytest.mark.parametrize("program", [
    # an object whose __eq__ says yes to everything
    "class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
    "def add(a, b):\n    return Yes()\n",
    # a subclass of int that equals anything: it crosses as its int value
    "class Liar(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
    "def add(a, b):\n    return Liar(0)\n",
    # a list subclass that equals anything
    "class L(list):\n    def __eq__(self, other):\n        return True\n"
    "def add(a, b):\n    return L()\n",
    # printing 'passed' and exiting cleanly before the calls
    "print('passed')\nimport sys\nsys.exit(0)\ndef add(a, b):\n    return 0\n",
    # exiting 0 from inside the call
    "import os\ndef add(a, b):\n    os._exit(0)\n",
    "def add(a, b):\n    raise SystemExit(0)\n",
    # patching the comparison it can reach: its own builtins
    "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 0\ndef add(a, b):\n    return None\n",
])
def test_calls_cannot_be_faked(pool, program):
    tests = CallTests("add", [[1, 2], [2, 2]], [3, 4])
    done = run(pool, program, tests, all_tests=True)
    assert done.status != "passed", done
    assert done.details.get("tests_passed", 0) == 0, done


def test_calls_cannot_read_the_expected_values(pool):
    program = textwrap.dedent("""
        import gc, os
        def add(a, b):
            found = [o for o in gc.get_objects() if isinstance(o, list) and 987654 in o]
            return found[0][0] if found else -1
        """)
    done = run(pool, program, CallTests("add", [[1, 2]], [987654]))
    assert done.status == "failed", done


# ---- pytest-style ------------------------------------------------------------------------------------

KODCODE = textwrap.dedent("""
    import pytest
    from solution import add

    def test_numbers():
        assert add(1, 2) == 3

    @pytest.mark.parametrize("a, b, expected", [(1, 1, 2), (0.1, 0.2, 0.3), (-1, 1, 0)])
    def test_many(a, b, expected):
        assert add(a, b) == pytest.approx(expected)

    def test_type_error():
        with pytest.raises(TypeError):
            add(1, "x")

    @pytest.fixture
    def words():
        yield ("a", "b")

    def test_words(words):
        assert add(*words) == "ab"

    class TestAdd:
        def test_lists(self):
            assert add([1], [2]) == [1, 2]
    """)


def test_pytest_functions_are_each_one_test(pool):
    done = run(pool, ADD, PytestTests(KODCODE))
    assert done.status == "passed" and counts(done) == (7, 7), done
    half = run(pool, "def add(a, b):\n    return a + b if isinstance(a, str) else 2\n", PytestTests(KODCODE),
               all_tests=True)
    assert half.status == "failed" and counts(half) == (2, 7), half  # test_many[0] and test_words
    assert half.details["test_name"] == "test_numbers"
    missing = run(pool, "def plus(a, b):\n    return a + b\n", PytestTests(KODCODE))
    assert missing.status == "failed" and "add" in missing.details["error"] and counts(missing) == (0, 5)


def test_pytest_module_import_and_skip(pool):
    tests = "import solution\nimport pytest\n\ndef test_a():\n    assert solution.add(2, 2) == 4\n\n" \
            "@pytest.mark.skip(reason='later')\ndef test_b():\n    assert False\n\n" \
            "def test_c():\n    pytest.skip('not today')\n\n@pytest.mark.skipif(True, reason='no')\ndef test_d():\n" \
            "    assert False\n\n@pytest.mark.skipif(False, reason='runs')\ndef test_e():\n    assert solution.add(1, 1) == 2\n\n" \
            "@pytest.mark.xfail\ndef test_f():\n    assert solution.add(1, 1) == 3\n"
    done = run(pool, ADD, PytestTests(tests))
    assert done.status == "passed" and counts(done) == (2, 2), done


@pytest.mark.parametrize("program", [
    # defining tests of its own, to add passes
    ADD.replace("a + b", "a - b") + "def test_extra():\n    pass\n\nclass TestMore:\n    def test_x(self):\n        pass\n",
    # redefining pytest or the tests' helpers in its own process
    "import sys, types\nsys.modules['pytest'] = types.SimpleNamespace(approx=lambda x: x)\n"
    "def add(a, b):\n    return 0\n",
    # an exception it raises inside a test: a SystemExit
    "def add(a, b):\n    raise SystemExit(0)\n",
    # an exception named like pytest's outcome exceptions
    "class Skipped(BaseException):\n    pass\ndef add(a, b):\n    raise Skipped()\n",
    # reading the test file
    "import glob\ndef add(a, b):\n    return [open(p).read() for p in glob.glob('/tmp/**', recursive=True)]\n",
])
def test_pytest_cannot_be_faked_or_inflated(pool, program):
    done = run(pool, program, PytestTests(KODCODE), all_tests=True)
    assert done.status != "passed", done
    passed, total = counts(done)
    assert total in (7, None) and (passed or 0) <= 3, done


def test_pytest_raises_cannot_catch_a_dead_program(pool):
    tests = "import pytest\nfrom solution import add\n\ndef test_a():\n    with pytest.raises(BaseException):\n" \
            "        add(1, 2)\n\ndef test_b():\n    assert add(1, 1) == 2\n"
    done = run(pool, "import os\ndef add(a, b):\n    os._exit(0)\n", PytestTests(tests), all_tests=True)
    assert done.status == "runtime_error", done


# ---- counts of the older kinds ---------------------------------------------------------------------

def test_assert_lines_are_counted_and_all_tests_keeps_going(pool):
    tests = FunctionTests("assert add(1, 2) == 3\nassert add(1, 1) == 3\nassert add(0, 0) == 0")
    first = run(pool, ADD, tests)
    assert first.status == "failed" and counts(first) == (1, 3) and first.details["calls"] == 2
    every = run(pool, ADD, tests, all_tests=True)
    assert every.status == "failed" and counts(every) == (2, 3) and every.details["test_line"] == 2
    check = FunctionTests("def check(candidate):\n    assert candidate(1, 2) == 3\n", "add")
    assert counts(run(pool, ADD, check)) == (1, 1)


def test_extra_asserts_or_tests_in_the_program_do_not_count(pool):
    program = ADD.replace("a + b", "a - b") + "assert True\nassert True\ndef test_more():\n    pass\n"
    done = run(pool, program, FunctionTests("assert add(1, 2) == 3\nassert add(0, 0) == 0"), all_tests=True)
    assert done.status == "failed" and counts(done) == (1, 2), done


def test_stdio_cases_are_counted(pool):
    tests = StdioTests([Case("1\n", "1\n"), Case("2\n", "3\n"), Case("4\n", "4\n")])
    assert counts(run(pool, "print(input())", tests)) == (1, 3)
    every = run(pool, "print(input())", tests, all_tests=True)
    assert every.status == "failed" and counts(every) == (2, 3) and every.details["case"] == 1
