"""Code verifier: run the program in a reply against the example's tests in the Docker sandbox.

Reward 1.0 only when the sandbox says ``passed``: every test ran, in a harness the program
cannot reach, and passed. ``example.reference`` is a dict (docs/verifiers.md, ``## code``)::

    {"tests": "def check(candidate): ...", "entry_point": "add"}   # HumanEval
    {"tests": ["assert add(1, 2) == 3", ...]}                       # MBPP: a list or one string
    {"cases": [{"input": "1 2\\n", "output": "3\\n"}, ...]}          # stdin/stdout

with optional ``"language"`` (``python`` or ``cpp``), ``"prefix"`` (code put before the reply's
code, e.g. the HumanEval prompt for models that continue it), ``"timeout"`` (seconds) and
``"memory_mb"``. The code is the reply's last fenced block (``extract="last_block"``, the
default), its first (``first_block``) or the whole reply (``whole``); blocks tagged with another
language (```` ```bash ````) are skipped.

Reasons: ``correct``, ``no_code``, ``bad_reference``, or the sandbox's status (``failed``,
``timeout``, ``memory``, ``runtime_error``, ``compile_error``, ``sandbox_error``).
``sandbox_error`` means the sandbox could not judge (Docker down, image missing): reward 0 and
``details["sandbox_error"] = True``, so a trainer can tell it from a wrong answer.
"""

from __future__ import annotations

import re
from concurrent.futures import Future
from typing import Any, Sequence

from reasoner.sandbox import LANGUAGES, Case, Execution, FunctionTests, Job, Limits, StdioTests
from reasoner.verifiers import Verdict, Verifier

EXTRACT = ("last_block", "first_block", "whole")
LANGUAGE_TAGS = {"python": {"", "python", "py", "python3", "py3"}, "cpp": {"", "cpp", "c++", "cc", "cxx"}}
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^\s`{]*)")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Fenced blocks of a Markdown reply as ``(language tag, code)``; an unclosed last block counts."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, tag = m.group(1), m.group(2).lower()
        body, i = [], i + 1
        while i < len(lines) and not (lines[i].strip().startswith(fence[0] * len(fence))
                                      and set(lines[i].strip()) == {fence[0]}):
            body.append(lines[i])
            i += 1
        blocks.append((tag, "\n".join(body) + "\n"))
        i += 1
    return blocks


def extract_code(text: str, mode: str = "last_block", language: str = "python") -> str | None:
    """The program in a reply (see the module docstring), or None when there is none."""
    if not isinstance(text, str):
        return None
    if mode == "whole":
        return text if text.strip() else None
    tags = LANGUAGE_TAGS.get(language, {""})
    blocks = [code for tag, code in code_blocks(text) if tag in tags and code.strip()]
    if not blocks:
        return None
    return blocks[-1] if mode == "last_block" else blocks[0]


def tests_of(reference: Any) -> tuple[FunctionTests | StdioTests, str]:
    """The sandbox tests and language an example's reference describes; ValueError if it is malformed."""
    if not isinstance(reference, dict):
        raise ValueError(f"a code reference is a dict with 'tests' or 'cases', not {type(reference).__name__}")
    language = reference.get("language", "python")
    if language not in LANGUAGES:
        raise ValueError(f"'language' must be one of {', '.join(LANGUAGES)}, not {language!r}")
    if "cases" in reference:
        cases = reference["cases"]
        if not isinstance(cases, (list, tuple)) or not cases:
            raise ValueError("'cases' must be a non-empty list of {input, output}")
        out = []
        for case in cases:
            if not isinstance(case, dict) or "output" not in case:
                raise ValueError("each case needs an 'output' (and usually an 'input')")
            out.append(Case(str(case.get("input", "")), str(case["output"])))
        return StdioTests(tuple(out)), language
    tests = reference.get("tests")
    if isinstance(tests, (list, tuple)) and all(isinstance(t, str) for t in tests) and tests:
        tests = "\n".join(tests)
    if not isinstance(tests, str) or not tests.strip():
        raise ValueError("'tests' must be test code (a string or a list of assert lines)")
    entry = reference.get("entry_point")
    if entry is not None and not isinstance(entry, str):
        raise ValueError("'entry_point' must be a function name")
    return FunctionTests(tests, entry), language


class CodeVerifier(Verifier):
    """Runs the reply's code against the example's tests in the Docker sandbox; 1 only if every test passes."""

    name = "code"

    def __init__(self, extract: str = "last_block", workers: int = 2, timeout: float = 10.0, memory_mb: int = 512,
                 image: str | None = None, hosts: str | Sequence[str] | None = None, sandbox=None):
        from reasoner.sandbox import hosts as hostlist
        if extract not in EXTRACT:
            raise ValueError(f"extract must be one of {', '.join(EXTRACT)}, not {extract!r}")
        self.extract = extract
        self.limits = Limits(timeout=float(timeout), memory_mb=int(memory_mb))
        self.workers = int(workers)
        self.image = image
        hostlist.parse(hosts, self.workers)  # a malformed endpoint is an error now, not at the first batch
        self.hosts = hosts
        self._sandbox = sandbox
        self._owns_sandbox = sandbox is None

    @property
    def sandbox(self):
        """The pool jobs go to; started on first use."""
        if self._sandbox is None:
            from reasoner.sandbox.pool import Sandbox
            kwargs = {"image": self.image} if self.image else {}
            self._sandbox = Sandbox(workers=self.workers, limits=self.limits, hosts=self.hosts, **kwargs)
        return self._sandbox

    def job(self, completion: str, example) -> Job | Verdict:
        """The sandbox job for one reply, or the verdict when there is nothing to run."""
        reference = getattr(example, "reference", None)
        try:
            tests, language = tests_of(reference)
            limits = Limits(timeout=float(reference.get("timeout", self.limits.timeout)),
                            memory_mb=int(reference.get("memory_mb", self.limits.memory_mb)))
        except (ValueError, TypeError) as exc:
            return Verdict(0.0, False, "bad_reference", {"error": str(exc)})
        code = extract_code(completion, self.extract, language)
        if code is None:
            return Verdict(0.0, False, "no_code", {"extract": self.extract})
        prefix = reference.get("prefix") or ""
        program = prefix + ("\n" if prefix and not prefix.endswith("\n") else "") + code
        try:
            return Job(program, tests, limits, language)
        except (ValueError, TypeError) as exc:
            return Verdict(0.0, False, "bad_reference", {"error": str(exc)})

    def verify(self, completion: str, example) -> Verdict:
        return self.verify_batch([completion], [example])[0]

    def verify_batch(self, completions: Sequence[str], examples: Sequence) -> list[Verdict]:
        """All jobs go to the pool at once and run concurrently; verdicts come back in order."""
        pending: list[Future | Verdict] = []
        for completion, example in zip(completions, examples, strict=True):
            job = self.job(completion, example)
            pending.append(self.sandbox.submit(job) if isinstance(job, Job) else job)
        return [p if isinstance(p, Verdict) else self.verdict(p.result()) for p in pending]

    @staticmethod
    def verdict(execution: Execution) -> Verdict:
        ok = execution.status == "passed"
        details: dict[str, Any] = {"status": execution.status, "seconds": execution.seconds}
        for key in ("error", "test", "test_line", "case", "expected"):
            if key in execution.details:
                details[key] = execution.details[key]
        if execution.stderr:
            details["stderr"] = execution.stderr[-1000:]
        if execution.status == "sandbox_error":
            details["sandbox_error"] = True
        return Verdict(1.0 if ok else 0.0, ok, "correct" if ok else execution.status, details)

    def close(self) -> None:
        if self._sandbox is not None and self._owns_sandbox:
            self._sandbox.close()
            self._sandbox = None
