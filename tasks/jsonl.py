"""Any JSONL file of problems: one JSON object a line.

Fields: the prompt from ``prompt`` (a string or a list of chat messages), ``question`` or
``problem``; the reference from ``reference``, ``answer`` or ``solution``; the verifier from
``verifier`` (default ``math``); an optional ``id``; everything else goes to ``meta``.

Malformed rows (not JSON, not an object, no prompt or no reference) are skipped with one
warning that counts them and names the first line; ``strict=True`` makes the first one an
error instead. A file with no usable row is always an error.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

from tasks import Example, Task, TaskError

log = logging.getLogger(__name__)
PROMPT_KEYS = ("prompt", "question", "problem")
REFERENCE_KEYS = ("reference", "answer", "solution")


def read_rows(path: str | Path, strict: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each JSON object line; bad lines are skipped or raised."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"data file not found: {path}")
    bad: list[int] = []
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                if strict:
                    raise TaskError(f"{path}:{lineno}: malformed row ({exc})") from None
                bad.append(lineno)
                continue
            yield lineno, row
    if bad:
        log.warning("%s: skipped %d malformed row(s), first at line %d", path, len(bad), bad[0])


def build(path: str | Path, name: str, convert: Callable[[int, dict], Example], strict: bool = False) -> Task:
    """Turn rows into examples with ``convert``; a row it rejects with TaskError is skipped or raised."""
    examples, skipped = [], []
    for lineno, row in read_rows(path, strict=strict):
        try:
            examples.append(convert(lineno, row))
        except TaskError as exc:
            if strict:
                raise TaskError(f"{path}:{lineno}: {exc}") from None
            skipped.append((lineno, str(exc)))
    if skipped:
        log.warning("%s: skipped %d row(s) without the needed fields, first at line %d (%s)",
                    path, len(skipped), skipped[0][0], skipped[0][1])
    if not examples:
        raise TaskError(f"{path}: no usable rows")
    return Task(name, examples)


def _first(row: dict, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        if key in row and row[key] not in (None, ""):
            return key, row[key]
    return None, None


def convert_row(lineno: int, row: dict, default_verifier: str = "math") -> Example:
    pkey, prompt = _first(row, PROMPT_KEYS)
    rkey, reference = _first(row, REFERENCE_KEYS)
    if pkey is None:
        raise TaskError(f"no prompt field (one of {', '.join(PROMPT_KEYS)})")
    if rkey is None:
        raise TaskError(f"no reference field (one of {', '.join(REFERENCE_KEYS)})")
    meta = {k: v for k, v in row.items() if k not in (pkey, rkey, "id", "verifier")}
    return Example(id=str(row.get("id", f"line-{lineno}")), prompt=prompt, reference=reference,
                   verifier=str(row.get("verifier", default_verifier)), meta=meta)


def load(arg: str | None = None, split: str = "train") -> Task:
    """Problems from your own JSONL file: jsonl:PATH (fields prompt/question, answer/reference, verifier)."""
    if not arg:
        raise TaskError("jsonl needs a path: jsonl:/path/to/problems.jsonl")
    path = Path(arg).expanduser()
    return build(path, f"jsonl[{path.name}]", convert_row)
