"""Competition math benchmarks with a final answer: MATH-500, AIME 2024, AMC 2023.

* ``math500``: the 500-problem subset of MATH (Hendrycks et al. 2021) chosen by Lightman et al.
  (2023, "Let's Verify Step by Step"); answers are LaTeX (``\\frac{14}{3}``, ``(3, \\frac{\\pi}{2})``).
* ``aime24``: the 30 problems of AIME 2024 I and II; answers are integers 0-999.
* ``amc23``: 40 problems of AMC 2023 as used by math-reasoning evaluations; numeric answers.

Each is a test set only (the task has no split). The prompt is the problem followed by the
standard instruction to reason step by step and box the answer; the ``math`` verifier judges
the last ``\\boxed{}`` (or "the answer is ...") against the reference. Data comes from the data
directories or Hugging Face, or ``NAME:PATH`` (see ``reasoner.tasks.sources``).
"""

from __future__ import annotations

from reasoner.tasks import Example, Task, TaskError, sources
from reasoner.tasks.gsm8k import INSTRUCTION
from reasoner.tasks.jsonl import from_rows

EXTRACT = ["boxed", "answer_is"]
MATH500 = sources.Source("math500_test.jsonl", "HuggingFaceH4/MATH-500", "test")
AIME24 = sources.Source("aime24_test.jsonl", "HuggingFaceH4/aime_2024", "train")
AMC23 = sources.Source("amc23_test.jsonl", "math-ai/amc23", "test")


def _example(id_: str, question, reference: str, **meta) -> Example:
    if not isinstance(question, str) or not question.strip():
        raise TaskError("the problem is not a non-empty string")
    question = question.strip()
    return Example(id=id_, prompt=f"{question}\n{INSTRUCTION}", reference=reference, verifier="math",
                   meta={"question": question, "extract": EXTRACT, **{k: v for k, v in meta.items() if v is not None}})


def number_text(value) -> str:
    """``27.0`` -> ``"27"``, ``"025"`` -> ``"25"``, ``2.5`` -> ``"2.5"``: integers without padding or ``.0``."""
    if isinstance(value, bool):
        raise TaskError(f"answer {value!r} is not a number")
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return str(int(text))
    return text


def _math500(lineno: int, row: dict) -> Example:
    answer = sources.field(row, "answer")
    return _example(str(row.get("unique_id") or f"math500-{lineno}"), sources.field(row, "problem"), str(answer).strip(),
                    solution=row.get("solution"), subject=row.get("subject"), level=row.get("level"))


def _aime24(lineno: int, row: dict) -> Example:
    id_ = row.get("id")
    return _example(f"aime24-{id_ if id_ is not None else lineno}", sources.field(row, "problem", "question"),
                    number_text(sources.field(row, "answer")), solution=row.get("solution"), url=row.get("url"))


def _amc23(lineno: int, row: dict) -> Example:
    id_ = row.get("id")
    return _example(f"amc23-{id_ if id_ is not None else lineno}", sources.field(row, "problem", "question"),
                    number_text(sources.field(row, "answer")), url=row.get("url"))


def _load(name: str, source: sources.Source, convert, arg: str | None, strict: bool) -> Task:
    rows, where = sources.rows(name, arg, source, strict)
    return from_rows(name, rows, where, convert, strict)


def load_math500(arg: str | None = None, split: str = "test", strict: bool = False) -> Task:
    """MATH-500 (500 competition problems, LaTeX answers): math500, math500:PATH or math500:hf[:ID]."""
    return _load("math500", MATH500, _math500, arg, strict)


def load_aime24(arg: str | None = None, split: str = "test", strict: bool = False) -> Task:
    """AIME 2024 (30 problems, integer answers): aime24, aime24:PATH or aime24:hf[:ID]."""
    return _load("aime24", AIME24, _aime24, arg, strict)


def load_amc23(arg: str | None = None, split: str = "test", strict: bool = False) -> Task:
    """AMC 2023 (40 problems, numeric answers): amc23, amc23:PATH or amc23:hf[:ID]."""
    return _load("amc23", AMC23, _amc23, arg, strict)
