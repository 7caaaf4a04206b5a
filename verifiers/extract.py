"""Find the final answer in a model's reply. Pure string work: nothing here evaluates text.

Strategies, tried in the order a task asks for:

* ``boxed``: the last ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces allowed).
* ``hash``: GSM8K style ``#### 42``.
* ``answer_is``: "the answer is 42" / "answer: 42" (last occurrence).
* ``last_number``: the last number in the reply (a lenient fallback).
"""

from __future__ import annotations

import re

STRATEGIES = ("boxed", "hash", "answer_is", "last_number")
STRICT = ("boxed",)
DEFAULT = ("boxed", "hash", "answer_is")

_BOX_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_SPACE = re.compile(r"\\boxed\s+(-?[0-9][0-9.,/]*)")
_HASH = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(r"(?:answer\s*(?:is|:|=)|answer\s+is\s*:)\s*\$?\s*([^\n$]+)", re.IGNORECASE)
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
MAX_SCAN = 100_000  # characters of a reply that extraction looks at (the tail)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``/``\\fbox{...}``, braces balanced; None if absent or unclosed."""
    text = text[-MAX_SCAN:]
    found = None
    for m in _BOX_OPEN.finditer(text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                i += 2
                continue
            depth += (c == "{") - (c == "}")
            i += 1
        if depth == 0:
            found = text[m.end():i - 1]
    if found is None:
        spaced = _BOX_SPACE.findall(text)
        if spaced:
            found = spaced[-1]
    return None if found is None else found.strip()


def _strip_trailing(s: str) -> str:
    s = s.strip().rstrip(".").strip()
    return s.strip("$ ").strip()


def extract(text: str, strategies: tuple[str, ...] | list[str] = DEFAULT) -> tuple[str | None, str | None]:
    """Return ``(answer, strategy)`` for the first strategy that finds one, else ``(None, None)``."""
    if not isinstance(text, str):
        return None, None
    text = text[-MAX_SCAN:]
    for strategy in strategies:
        if strategy == "boxed":
            ans = last_boxed(text)
        elif strategy == "hash":
            hits = _HASH.findall(text)
            ans = _strip_trailing(hits[-1]) if hits else None
        elif strategy == "answer_is":
            hits = _ANSWER_IS.findall(text)
            ans = _strip_trailing(hits[-1]) if hits else None
        elif strategy == "last_number":
            hits = NUMBER.findall(text)
            ans = hits[-1].strip() if hits else None
        else:
            raise ValueError(f"unknown extraction strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
        if ans:
            return ans, strategy
    return None, None
