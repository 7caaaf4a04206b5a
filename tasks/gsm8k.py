"""GSM8K grade-school math word problems (Cobbe et al. 2021): 7473 train, 1319 test.

Rows are ``{"question": ..., "answer": "...reasoning... #### 72"}`` as in
openai/grade-school-math. The reference is the number after ``####`` (thousands separators
removed). The prompt asks for step-by-step reasoning and a boxed final answer.

``gsm8k`` finds ``gsm8k_<split>.jsonl`` in the data directories or downloads ``openai/gsm8k``;
``gsm8k:PATH`` reads one file (then the task has no split); see ``reasoner.tasks.sources``.
"""

from __future__ import annotations

from pathlib import Path

from reasoner.tasks import Example, Task, TaskError, sources
from reasoner.tasks.jsonl import from_rows

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
SPLITS = {split: sources.Source(f"gsm8k_{split}.jsonl", "openai/gsm8k", split, "main") for split in ("train", "test")}


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
    if row.get("answer") in (None, ""):
        raise TaskError("no 'answer' field")
    return Example(id=str(row.get("id", f"gsm8k-{lineno}")), prompt=f"{question.strip()}\n{INSTRUCTION}",
                   reference=reference_of(row.get("answer")), verifier="math",
                   meta={"question": question.strip(), "solution": row.get("answer"),
                         "extract": ["boxed", "hash", "answer_is"]})


def load(arg: str | None = None, split: str = "train", strict: bool = False) -> Task:
    """GSM8K: gsm8k (data directory or Hugging Face), gsm8k:PATH or gsm8k:hf[:ID]; split train or test."""
    if split not in SPLITS:
        raise TaskError(f"gsm8k: split must be train or test (got {split!r})")
    one_file = bool(arg) and arg != "hf" and not arg.startswith("hf:") and Path(arg).expanduser().is_file()
    rows, where = sources.rows("gsm8k", arg, SPLITS[split], strict)
    return from_rows("gsm8k", rows, where, _convert, strict, split=None if one_file else split)
