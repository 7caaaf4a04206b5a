"""The code dataset loaders on small files written here, rows shaped as in the real datasets,
and one row per dataset judged end to end by the code verifier in the real sandbox."""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import zlib

import pytest

from reasoner import tasks
from reasoner.tasks import TaskError
from reasoner.tasks.code_datasets import LEETCODE_PREFIX, decode_lcb_tests
from tests.conftest import write_jsonl

MBPP = {"task_id": 2, "text": "Write a function to find the shared elements from the given two lists.",
        "code": "def similar_elements(test_tup1, test_tup2):\r\n  res = tuple(set(test_tup1) & set(test_tup2))\r\n"
                "  return (res) ",
        "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
                      "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))",
                      "assert set(similar_elements((11, 12, 14, 13),(17, 15, 14, 13))) == set((13, 14))"],
        "test_setup_code": "", "challenge_test_list": []}
APPS_STDIO = {"problem_id": 4000, "difficulty": "introductory", "url": "https://codeforces.com/problemset/problem/1/A",
              "question": "You are given n integers. Print their sum.\n\n-----Input-----\n\nThe first line holds n, "
                          "the second the n integers.\n\n-----Output-----\n\nPrint the sum.",
              "solutions": json.dumps(["n = int(input())\nprint(sum(map(int, input().split())))\n"]),
              "input_output": json.dumps({"inputs": ["3\n1 2 3\n", "1\n-5\n"], "outputs": ["6\n", "-5\n"]}),
              "starter_code": ""}
APPS_CALL = {"problem_id": 2500, "difficulty": "introductory", "url": "https://www.codewars.com/kata/54d81488b981293527000c8f",
             "question": "Given a list of integers and a single sum value, return the first two values (parse from "
                         "the left please) in order of appearance that add up to form the sum.",
             "solutions": json.dumps(["def sum_pairs(ints, s):\n    seen = set()\n    for x in ints:\n"
                                      "        if s - x in seen:\n            return [s - x, x]\n        seen.add(x)\n"]),
             "input_output": json.dumps({"fn_name": "sum_pairs", "inputs": [[[1, 4, 8, 7, 3, 15], 8],
                                                                            [[1, -2, 3, 0, -6, 1], -6], [[20, -13, 40], -7]],
                                         "outputs": [[[1, 7]], [[0, -6]], [None]]}),
             "starter_code": "def sum_pairs(ints, s):\n\t"}
TACO_LEETCODE = {"question": "Say you have an array for which the ith element is the price of a given stock on day i. "
                             "Find the maximum profit of one transaction.",
                 "solutions": json.dumps(["class Solution:\n    def maxProfit(self, prices: List[int]) -> int:\n"
                                          "        best, low = 0, float('inf')\n        for p in prices:\n"
                                          "            low = min(low, p)\n            best = max(best, p - low)\n"
                                          "        return best\n"]),
                 "starter_code": "class Solution:\n    def maxProfit(self, prices: List[int]) -> int:\n        ",
                 "input_output": json.dumps({"fn_name": "maxProfit", "inputs": [[[7, 1, 5, 3, 6, 4]], [[7, 6, 4, 3, 1]]],
                                             "outputs": [5, 0]}),
                 "difficulty": "EASY", "raw_tags": "['Array', 'Dynamic Programming']", "name": None, "source": "leetcode",
                 "tags": "['Dynamic programming']", "skill_types": "['Dynamic programming']",
                 "url": "https://leetcode.com/problems/best-time-to-buy-and-sell-stock/", "Expected Auxiliary Space": None,
                 "time_limit": None, "date": None, "picture_num": None, "memory_limit": None,
                 "Expected Time Complexity": None}
CODECONTESTS = {"name": "1548_A. Web of Lies", "description": "Read two integers a and b and print a + b.",
                "public_tests": {"input": ["1 2\n"], "output": ["3\n"]},
                "private_tests": {"input": ["10 20\n", "-1 1\n"], "output": ["30\n", "0\n"]},
                "generated_tests": {"input": ["5 5\n"], "output": ["10\n"]}, "source": 2, "difficulty": 7,
                "solutions": {"language": [2, 3], "solution": ["#include <cstdio>\nint main(){}",
                                                               "a, b = map(int, input().split())\nprint(a + b)\n"]},
                "incorrect_solutions": {"language": [], "solution": []}, "cf_contest_id": 1548, "cf_index": "A",
                "cf_points": 500.0, "cf_rating": 1400, "cf_tags": ["graphs"], "is_description_translated": False,
                "untranslated_description": "", "time_limit": {"seconds": 2, "nanos": 0},
                "memory_limit_bytes": 256000000, "input_file": "", "output_file": ""}
KODCODE = {"version": "v1.0", "style": "instruct", "subset": "Leetcode", "question_id": "Leetcode_3_I",
           "question": "Given a list of integers nums, return the maximum product of two distinct elements.",
           "solution": "def max_product(nums):\n    a, b = sorted(nums)[-2:]\n    c, d = sorted(nums)[:2]\n"
                       "    return max(a * b, c * d)\n",
           "test": "from solution import max_product\nimport pytest\n\ndef test_max_product_positive_numbers():\n"
                   "    assert max_product([1, 2, 3, 4]) == 12\n\ndef test_max_product_negative_numbers():\n"
                   "    assert max_product([-10, -10, 5, 2]) == 100\n\n"
                   "@pytest.mark.parametrize('nums, expected', [([0, 0], 0), ([1, 5], 5)])\n"
                   "def test_pairs(nums, expected):\n    assert max_product(nums) == expected\n",
           "test_info": [{"docstring": "Returns the maximum product.", "function_declaration": "def max_product(nums):",
                          "function_name": "max_product", "parameter_list": "(nums)"}],
           "gpt_pass_sequence": [1, 1, 1], "gpt_pass_trial_num": 3, "gpt_difficulty": "easy", "gpt_pass_percentage": 1.0}


def lcb_private(cases: list) -> str:
    """LiveCodeBench's encoding of private tests: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


LCB_FUNCTIONAL = {"question_title": "number-of-senior-citizens", "platform": "leetcode", "question_id": "2727",
                  "question_content": "Return the number of passengers strictly more than 60 years old; the age is "
                                      "characters 11 and 12 of each 15-character detail string.",
                  "contest_id": "biweekly-contest-104", "contest_date": "2023-05-13T00:00:00", "difficulty": "easy",
                  "starter_code": "class Solution:\n    def countSeniors(self, details: List[str]) -> int:\n        ",
                  "public_test_cases": json.dumps([{"input": "[\"7868190130M7522\", \"5303914400F9211\", "
                                                             "\"9273338290F4010\"]", "output": "2",
                                                    "testtype": "functional"}]),
                  "private_test_cases": lcb_private([{"input": "[\"1313579440F2036\", \"2921522980M5644\"]",
                                                      "output": "0", "testtype": "functional"}]),
                  "metadata": json.dumps({"func_name": "countSeniors"})}
LCB_STDIN = {"question_title": "A. Sum", "platform": "codeforces", "question_id": "1742A", "contest_id": "1742",
             "question_content": "Given three integers, is one of them the sum of the other two? Print YES or NO for "
                                 "each of t test cases.", "contest_date": "2022-10-13T00:00:00", "difficulty": "easy",
             "starter_code": "", "metadata": "{}",
             "public_test_cases": json.dumps([{"input": "2\n1 4 3\n2 5 8\n", "output": "YES\nNO\n", "testtype": "stdin"}]),
             "private_test_cases": lcb_private([{"input": "1\n0 0 0\n", "output": "YES\n", "testtype": "stdin"}])}
LCB_SOLUTIONS = {
    "2727": "class Solution:\n    def countSeniors(self, details: List[str]) -> int:\n"
            "        return sum(int(d[11:13]) > 60 for d in details)\n",
    "1742A": "for _ in range(int(input())):\n    a, b, c = map(int, input().split())\n"
             "    print('YES' if a + b == c or a + c == b or b + c == a else 'NO')\n"}


def test_mbpp_rows_become_assert_tests(tmp_path):
    task = tasks.load(f"mbpp:{write_jsonl(tmp_path / 'mbpp.jsonl', [MBPP])}")
    ex = task[0]
    assert (ex.id, ex.verifier, task.split) == ("mbpp-2", "code", None)
    assert ex.reference == {"tests": "\n".join(MBPP["test_list"])}
    assert MBPP["test_list"][0] in ex.prompt and "```python" in ex.prompt
    capped = tasks.load(f"mbpp:path={tmp_path / 'mbpp.jsonl'},max_tests=1")
    assert capped[0].reference["tests"] == MBPP["test_list"][0]


def test_apps_and_taco_stdio_and_calls(tmp_path):
    apps = tasks.load(f"apps:{write_jsonl(tmp_path / 'apps.jsonl', [APPS_STDIO, APPS_CALL])}")
    assert apps[0].reference == {"cases": [{"input": "3\n1 2 3\n", "output": "6\n"}, {"input": "1\n-5\n", "output": "-5\n"}]}
    assert "standard input" in apps[0].prompt
    assert apps[1].reference == {"fn_name": "sum_pairs", "inputs": [[[1, 4, 8, 7, 3, 15], 8], [[1, -2, 3, 0, -6, 1], -6],
                                                                   [[20, -13, 40], -7]],
                                 "outputs": [[[1, 7]], [[0, -6]], [None]], "unwrap_outputs": True}
    assert "def sum_pairs(ints, s):" in apps[1].prompt and apps[1].id == "apps-2500"
    taco = tasks.load(f"taco:{write_jsonl(tmp_path / 'taco.jsonl', [TACO_LEETCODE])}")
    assert taco[0].reference["class_name"] == "Solution" and taco[0].reference["fn_name"] == "maxProfit"
    assert taco[0].id == "taco-1" and taco[0].meta["solution"].startswith("class Solution")


def test_codecontests_public_private_and_generated(tmp_path):
    path = write_jsonl(tmp_path / "cc.jsonl", [CODECONTESTS])
    assert len(tasks.load(f"codecontests:{path}")[0].reference["cases"]) == 3
    ex = tasks.load(f"codecontests:path={path},generated=1")[0]
    assert ex.reference["cases"][-1] == {"input": "5 5\n", "output": "10\n"} and len(ex.reference["cases"]) == 4
    assert ex.meta["solution"].startswith("a, b = map") and ex.id == "codecontests-1548_A. Web of Lies"


def test_livecodebench_private_tests_decode_without_unpickling(tmp_path):
    task = tasks.load(f"livecodebench:{write_jsonl(tmp_path / 'lcb.jsonl', [LCB_FUNCTIONAL, LCB_STDIN])}")
    functional, stdin = task
    assert functional.reference == {
        "fn_name": "countSeniors", "class_name": "Solution", "prefix": LEETCODE_PREFIX,
        "inputs": [[["7868190130M7522", "5303914400F9211", "9273338290F4010"]], [["1313579440F2036", "2921522980M5644"]]],
        "outputs": [2, 0]}
    assert stdin.reference == {"cases": [{"input": "2\n1 4 3\n2 5 8\n", "output": "YES\nNO\n"},
                                         {"input": "1\n0 0 0\n", "output": "YES\n"}]}


class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {Evil.marker}",))


def test_livecodebench_refuses_a_pickle_that_is_not_a_string(tmp_path):
    Evil.marker = tmp_path / "pwned"
    payload = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(TaskError, match="refusing to unpickle"):
        decode_lcb_tests(payload)
    assert not Evil.marker.exists()
    both = base64.b64encode(zlib.compress(pickle.dumps(["[]", "[]"]))).decode()
    with pytest.raises(TaskError, match="refusing to unpickle"):
        decode_lcb_tests(both)
    with pytest.raises(TaskError, match="neither JSON nor base64"):
        decode_lcb_tests("not base64 at all!")
    bomb = base64.b64encode(zlib.compress(b"\0" * (300 << 20))).decode()
    with pytest.raises(TaskError, match="expand past"):
        decode_lcb_tests(bomb)
    row = {**LCB_FUNCTIONAL, "private_test_cases": payload}
    with pytest.raises(TaskError, match=r"lcb.jsonl:1: .*refusing to unpickle"):
        tasks.load(f"livecodebench:{write_jsonl(tmp_path / 'lcb.jsonl', [row])}", strict=True)
    assert not Evil.marker.exists()


def test_kodcode_pytest_tests(tmp_path):
    ex = tasks.load(f"kodcode:{write_jsonl(tmp_path / 'kc.jsonl', [KODCODE])}")[0]
    assert ex.reference == {"pytest": KODCODE["test"].strip()} and ex.id == "kodcode-Leetcode_3_I"
    assert "def max_product(nums):" in ex.prompt


def test_json_and_parquet_files_and_limit(tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps([MBPP, {**MBPP, "task_id": 3}]))
    assert [e.id for e in tasks.load(f"mbpp:{tmp_path / 'rows.json'}")] == ["mbpp-2", "mbpp-3"]
    assert len(tasks.load(f"mbpp:path={tmp_path / 'rows.json'},limit=1")) == 1
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist([CODECONTESTS]), tmp_path / "cc.parquet")
    assert tasks.load(f"codecontests:{tmp_path / 'cc.parquet'}")[0].reference["cases"][0] == {"input": "1 2\n",
                                                                                          "output": "3\n"}


def test_malformed_rows_are_one_line_naming_the_row(tmp_path, caplog):
    bad = {**APPS_STDIO, "problem_id": 1, "input_output": ""}
    worse = {**APPS_STDIO, "problem_id": 2, "input_output": "{not json"}
    path = write_jsonl(tmp_path / "apps.jsonl", [APPS_STDIO, bad, worse, "[1, 2]", "not json"])
    with caplog.at_level(logging.WARNING):
        task = tasks.load(f"apps:{path}")
    assert [e.id for e in task] == ["apps-4000"]
    assert "skipped 2 row(s)" in caplog.text and "first at line 2" in caplog.text
    with pytest.raises(TaskError, match=r"apps.jsonl:2: .*'input_output' has no 'inputs'"):
        tasks.load(f"apps:{path}", strict=True)
    with pytest.raises(TaskError, match="unknown option 'colour'"):
        tasks.load(f"apps:path={path},colour=red")
    with pytest.raises(TaskError, match="not found"):
        tasks.load("kodcode:/no/such/file.jsonl")
    lcb = write_jsonl(tmp_path / "lcb.jsonl", [{**LCB_FUNCTIONAL, "metadata": "{}"}])
    with pytest.raises(TaskError, match=r"lcb.jsonl:1: functional tests without a 'func_name'"):
        tasks.load(f"livecodebench:{lcb}", strict=True)


# ---- end to end, in the sandbox ----------------------------------------------------------------------

@pytest.mark.docker
def test_one_real_row_per_dataset_through_the_sandbox(tmp_path, pool):
    from reasoner.verifiers.code import CodeVerifier
    loaded = {
        "mbpp": (tasks.load(f"mbpp:{write_jsonl(tmp_path / 'm.jsonl', [MBPP])}")[0], MBPP["code"]),
        "apps": (tasks.load(f"apps:{write_jsonl(tmp_path / 'a.jsonl', [APPS_STDIO])}")[0], None),
        "apps-call": (tasks.load(f"apps:{write_jsonl(tmp_path / 'ac.jsonl', [APPS_CALL])}")[0], None),
        "taco": (tasks.load(f"taco:{write_jsonl(tmp_path / 't.jsonl', [TACO_LEETCODE])}")[0], None),
        "codecontests": (tasks.load(f"codecontests:{write_jsonl(tmp_path / 'c.jsonl', [CODECONTESTS])}")[0], None),
        "kodcode": (tasks.load(f"kodcode:{write_jsonl(tmp_path / 'k.jsonl', [KODCODE])}")[0], None),
    }
    for ex in tasks.load(f"livecodebench:{write_jsonl(tmp_path / 'l.jsonl', [LCB_FUNCTIONAL, LCB_STDIN])}"):
        loaded[ex.id] = (ex, LCB_SOLUTIONS[ex.id.split("-", 1)[1]])
    examples = [ex for ex, _ in loaded.values()]
    solutions = [solution or ex.meta["solution"] for ex, solution in loaded.values()]
    right = [f"Here is my solution.\n```python\n{code}\n```\nExample:\n```python\nprint('demo')\n```" for code in solutions]
    wrong = ["```python\n" + code.replace("return", "return None and ").replace("print(", "print(1, ") + "\n```"
             for code in solutions]
    verifier = CodeVerifier(sandbox=pool, timeout=10)
    verdicts = verifier.verify_batch(right + wrong, examples + examples)
    good, bad = verdicts[:len(right)], verdicts[len(right):]
    assert [(name, v.reason) for name, v in zip(loaded, good)] == [(name, "correct") for name in loaded], good
    assert all(v.reward == 0.0 for v in bad), [(n, v.reason) for n, v in zip(loaded, bad)]


def test_kodcode_rows_no_program_could_pass_are_skipped(tmp_path):
    rows = [KODCODE, {**KODCODE, "question_id": "b", "test": "import numpy as np\nfrom solution import f\n\n"
                                                              "def test_f():\n    assert f() == np.int64(1)\n"},
            {**KODCODE, "question_id": "c", "test": "from solution import f\n\ndef test_f(capsys):\n    f()\n"}]
    path = write_jsonl(tmp_path / "kc.jsonl", rows)
    assert [e.id for e in tasks.load(f"kodcode:{path}")] == ["kodcode-Leetcode_3_I"]
    with pytest.raises(TaskError, match=r"kc.jsonl:2: the tests import 'numpy'"):
        tasks.load(f"kodcode:{path}", strict=True)
