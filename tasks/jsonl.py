"""Any JSONL file of problems: one JSON object a line.

Fields: the prompt from ``prompt`` (a string or a list of chat messages), ``question`` or
``problem``; the reference from ``reference``, ``answer`` or ``solution``; the verifier from
``verifier`` (default ``math``); an optional ``id``; everything else goes to ``meta``.

Malformed rows (not JSON, not an object, no prompt or no reference) are skipped with one
warning that counts them and names the first line; ``strict=True`` makes the first one an
error instead. A file with no usable row, or two rows with the same ``id``, is always an error.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from reasoner.tasks import Example, Task, TaskError

log = logging.getLogger(__name__)
PROMPT_KEYS = ("prompt", "question", "problem")
REFERENCE_KEYS = ("reference", "answer", "solution")


def read_rows(path: str | Path, strict: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each JSON object line (``.gz`` files too); bad lines are skipped or raised."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"data file not found: {path}")
    bad: list[int] = []
    with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
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


def from_rows(name: str, rows: Iterable[tuple[int, dict]], where: str, convert: Callable[[int, dict], Example],
              strict: bool = False, split: str | None = None) -> Task:
    """Turn ``(line, row)`` pairs into examples with ``convert``; a row it rejects with TaskError is
    skipped with one warning, or with ``strict`` an error naming ``where:line``."""
    examples, skipped, seen = [], [], {}
    for lineno, row in rows:
        try:
            example = convert(lineno, row)
        except TaskError as exc:
            if strict:
                raise TaskError(f"{where}:{lineno}: {exc}") from None
            skipped.append((lineno, str(exc)))
            continue
        if example.id in seen:  # samples, evaluations and --resume key problems by id
            raise TaskError(f"{where}:{lineno}: duplicate id {example.id!r} (first at line {seen[example.id]})")
        seen[example.id] = lineno
        examples.append(example)
    if skipped:
        log.warning("%s: skipped %d row(s) without the needed fields, first at line %d (%s)",
                    where, len(skipped), skipped[0][0], skipped[0][1])
    if not examples:
        raise TaskError(f"{where}: no usable rows")
    return Task(name, examples, description=where, split=split)


def build(path: str | Path, name: str, convert: Callable[[int, dict], Example], strict: bool = False) -> Task:
    """Examples from a JSONL file (see `from_rows`)."""
    return from_rows(name, read_rows(path, strict=strict), str(path), convert, strict)


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


def load(arg: str | None = None, split: str = "train", strict: bool = False) -> Task:
    """Problems from your own JSONL file: jsonl:PATH (fields prompt/question, answer/reference, verifier)."""
    if not arg:
        raise TaskError("jsonl needs a path: jsonl:/path/to/problems.jsonl")
    path = Path(arg).expanduser()
    return build(path, f"jsonl[{path.name}]", convert_row, strict=strict)
