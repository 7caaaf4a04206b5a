"""Find the final answer in a model's reply. Pure string work: nothing here evaluates text.

Strategies, tried in the order a task asks for:

* ``boxed``: the last outermost ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces allowed; a box
  inside a box is part of the outer answer).
* ``hash``: GSM8K style ``#### 42`` (a Markdown heading such as ``#### Step 1`` is not an answer).
* ``answer_is``: "the answer is 42" / "answer: 42" (the last occurrence, so Minerva's
  ``Final Answer: The final answer is $42$. I hope it is correct.`` gives 42).

A reply that defines a macro (``\\def``, ``\\newcommand``, ``\\renewcommand``, ``\\let`` ...) could
change what its ``\\boxed{}`` means: `defines_macro` finds that, and the verifier then reads no answer.
* ``last_number``: the last number in the reply (a lenient fallback).
"""

from __future__ import annotations

import re

STRATEGIES = ("boxed", "hash", "answer_is", "last_number")
STRICT = ("boxed",)
DEFAULT = ("boxed", "hash", "answer_is")

_BOX_SCAN = re.compile(r"\\(?:boxed|fbox)\s*\{|\\.|[{}]", re.DOTALL)
_BOX_SPACE = re.compile(r"\\boxed\s+(-?[0-9][0-9.,/]*)")
_HASH = re.compile(r"(?<!#)####(?!#)[ \t]*([^\n]+)")
_HEADING = re.compile(r"[A-Za-z]{2,}")  # "#### Step 1", "#### Solution": a Markdown heading
_ANSWER_KEY = re.compile(r"answer\s*(?:is|:|=)\s*:?[\s*]*", re.IGNORECASE)
_ANSWER_VALUE = re.compile(
    r"(\$\$[^$]+\$\$|\$[^$\n]+\$|\\\([^\n]+?\\\)|[^\n]+?)(?=\.?\s*(?:\n|$)|\.\s)")
MACRO = re.compile(r"\\(?:def|edef|gdef|xdef|let|futurelet|newcommand|renewcommand|providecommand|"
                   r"DeclareMathOperator|newenvironment|renewenvironment|catcode)(?![a-zA-Z])")
NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
MAX_SCAN = 200_000  # characters of a reply that extraction looks at (the tail)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``/``\\fbox{...}``, braces balanced; None if absent or unclosed.

    One pass over the text with a stack of open braces, so the cost is linear in the length even
    for replies made of thousands of nested or unclosed boxes.
    """
    text = text[-MAX_SCAN:]
    stack: list[int] = []  # content start of an open box, or -1 for a plain brace
    tops: list[tuple[int, int]] = []  # closed boxes not inside a later-closed box, in order
    for m in _BOX_SCAN.finditer(text):
        tok = m.group()
        if tok == "{":
            stack.append(-1)
        elif tok == "}":
            if stack:
                start = stack.pop()
                if start >= 0:
                    while tops and tops[-1][0] > start:  # boxes inside this one are part of it
                        tops.pop()
                    tops.append((start, m.start()))
        elif len(tok) > 2:  # \boxed{ or \fbox{ (an escaped \{ is two characters)
            stack.append(m.end())
    if tops:
        inner = text[tops[-1][0]:tops[-1][1]].strip()
        for _ in range(10):  # \boxed{\boxed{3}} is 3
            if not (inner.startswith(("\\boxed", "\\fbox")) and _one_group(inner)):
                break
            inner = inner[inner.index("{") + 1:-1].strip()
        return inner
    spaced = _BOX_SPACE.findall(text)
    return spaced[-1].strip() if spaced else None


def _one_group(s: str) -> bool:
    """``\\boxed{...}`` whose first brace closes at the very end (one box, not ``\\boxed{3} + \\boxed{1}``)."""
    depth = 0
    for m in re.finditer(r"\\.|[{}]", s, re.DOTALL):
        if m.group() == "{":
            depth += 1
        elif m.group() == "}":
            depth -= 1
            if depth == 0:
                return m.end() == len(s)
    return False


def defines_macro(text: str) -> str | None:
    """The first macro definition in ``text`` (``\\renewcommand``, ``\\def`` ...), or None."""
    m = MACRO.search(text[-MAX_SCAN:]) if isinstance(text, str) else None
    return m.group() if m else None


def _answer_is(text: str) -> str | None:
    """The answer after the last "answer is" / "answer:" that is followed by one."""
    for key in reversed(list(_ANSWER_KEY.finditer(text))[-20:]):
        m = _ANSWER_VALUE.match(text, key.end())
        if m:
            ans = _strip_trailing(m.group(1))
            if ans:
                return ans
    return None


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
            hits = [h for h in _HASH.findall(text) if not _HEADING.match(h.strip())]
            ans = _strip_trailing(hits[-1]) if hits else None
        elif strategy == "answer_is":
            ans = _answer_is(text)
        elif strategy == "last_number":
            hits = NUMBER.findall(text)
            ans = hits[-1].strip() if hits else None
        else:
            raise ValueError(f"unknown extraction strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
        if ans:
            return ans, strategy
    return None, None
