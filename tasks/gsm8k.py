"""GSM8K grade-school math word problems from a local JSONL file.

Rows are ``{"question": ..., "answer": "...reasoning... #### 72"}`` as in
openai/grade-school-math. The reference is the number after ``####`` (thousands separators
removed). The prompt asks for step-by-step reasoning and a boxed final answer.
"""

from __future__ import annotations

from pathlib import Path

from tasks import Example, Task, TaskError
from tasks.jsonl import build

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def reference_of(answer: str) -> str:
    if not isinstance(answer, str) or "####" not in answer:
        raise TaskError("answer has no '#### <number>' line")
    value = answer.rsplit("####", 1)[1].strip().replace(",", "")
    if not value:
        raise TaskError("empty answer after '####'")
    return value


def _convert(lineno: int, row: dict) -> Example:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise TaskError("no 'question' field")
    return Example(id=str(row.get("id", f"gsm8k-{lineno}")), prompt=f"{question.strip()}\n{INSTRUCTION}",
                   reference=reference_of(row.get("answer")), verifier="math",
                   meta={"solution": row.get("answer"), "extract": ["boxed", "hash", "answer_is"]})


def load(arg: str | None = None, split: str = "train") -> Task:
    """GSM8K from a local JSONL file: gsm8k:PATH (openai/grade-school-math format)."""
    if not arg:
        raise TaskError("gsm8k needs a path to its JSONL file, e.g. gsm8k:../shared/data/gsm8k_test.jsonl")
    path = Path(arg).expanduser()
    return build(path, f"gsm8k[{path.stem}]", _convert)
