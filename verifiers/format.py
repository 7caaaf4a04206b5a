"""Format verifier: reward 1 when a completion has the shape the task asks for.

It checks shape only, never correctness. Modes:

* ``boxed`` (default): the reply contains a ``\\boxed{...}`` with balanced braces.
* ``think``: the reply is ``<think>...</think>`` followed by a non-empty answer.
* ``regex``: the reply matches ``pattern`` (Python ``re.fullmatch`` with DOTALL, after strip).

An example may override the mode and pattern through ``meta["format"]`` and ``meta["format_pattern"]``.
"""

from __future__ import annotations

import re

from reasoner.verifiers import Verdict, Verifier
from reasoner.verifiers.extract import last_boxed

_THINK = re.compile(r"\s*<think>(?P<thought>.*?)</think>\s*(?P<answer>\S.*)", re.DOTALL)
MODES = ("boxed", "think", "regex")


class FormatVerifier(Verifier):
    """Checks the shape of a reply (boxed answer, <think> block or a regex), not its correctness."""

    name = "format"

    def __init__(self, mode: str = "boxed", pattern: str | None = None):
        if mode not in MODES:
            raise ValueError(f"format mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == "regex" and not pattern:
            raise ValueError("format mode 'regex' needs a pattern")
        self.mode = mode
        self.pattern = re.compile(pattern, re.DOTALL) if pattern else None

    def verify(self, completion: str, example) -> Verdict:
        meta = getattr(example, "meta", None) or {}
        mode = meta.get("format", self.mode)
        if mode == "boxed":
            ok = last_boxed(completion) is not None
            return Verdict(float(ok), ok, "formatted" if ok else "no_boxed")
        if mode == "think":
            ok = _THINK.fullmatch(completion) is not None
            return Verdict(float(ok), ok, "formatted" if ok else "no_think_block")
        if mode == "regex":
            pattern = meta.get("format_pattern")
            regex = re.compile(pattern, re.DOTALL) if pattern else self.pattern
            if regex is None:
                return Verdict(0.0, False, "no_pattern")
            ok = regex.fullmatch(completion.strip()) is not None
            return Verdict(float(ok), ok, "formatted" if ok else "no_match")
        return Verdict(0.0, False, "unknown_mode", {"mode": mode})
