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

_BOX_SCAN = re.compile(r"\\(?:boxed|fbox)\s*\{|\\.|[{}]", re.DOTALL)
_BOX_SPACE = re.compile(r"\\boxed\s+(-?[0-9][0-9.,/]*)")
_HASH = re.compile(r"####\s*([^\n]+)")
_ANSWER_IS = re.compile(
    r"answer\s*(?:is|:|=)\s*:?[\s*]*(\$\$[^$]+\$\$|\$[^$\n]+\$|\\\([^\n]+?\\\)|[^\n]+?)(?=\.?\s*(?:\n|$)|\.\s)",
    re.IGNORECASE)
NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
MAX_SCAN = 200_000  # characters of a reply that extraction looks at (the tail)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``/``\\fbox{...}``, braces balanced; None if absent or unclosed.

    One pass over the text with a stack of open braces, so the cost is linear in the length even
    for replies made of thousands of nested or unclosed boxes.
    """
    text = text[-MAX_SCAN:]
    stack: list[int] = []  # content start of an open box, or -1 for a plain brace
    best: tuple[int, int] | None = None
    for m in _BOX_SCAN.finditer(text):
        tok = m.group()
        if tok == "{":
            stack.append(-1)
        elif tok == "}":
            if stack:
                start = stack.pop()
                if start >= 0 and (best is None or start > best[0]):
                    best = (start, m.start())
        elif len(tok) > 2:  # \boxed{ or \fbox{ (an escaped \{ is two characters)
            stack.append(m.end())
    if best is not None:
        return text[best[0]:best[1]].strip()
    spaced = _BOX_SPACE.findall(text)
    return spaced[-1].strip() if spaced else None


def _strip_trailing(s: str) -> str:
    s = s.strip().strip("*").strip()
    s = s.rstrip(".").strip()
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
