"""Code verifier: run the program in a reply against the example's tests in the Docker sandbox.

Reward 1.0 only when the sandbox says ``passed``: every test ran, in a harness the program
cannot reach, and passed (``reward="fraction"``: tests passed / total, ``ok`` still only when
all pass). ``example.reference`` is a dict (docs/verifiers.md, ``## code``)::

    {"tests": "def check(candidate): ...", "entry_point": "add"}   # HumanEval
    {"tests": ["assert add(1, 2) == 3", ...]}                       # MBPP: a list or one string
    {"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]}          # APPS/TACO calls (+ "class_name")
    {"pytest": "from solution import add\ndef test_add(): ..."}     # KodCode
    {"cases": [{"input": "1 2\n", "output": "3\n"}, ...]}          # stdin/stdout

with optional ``"language"`` (``python`` or ``cpp``), ``"prefix"`` (code put before the reply's
code, e.g. the HumanEval prompt for models that continue it), ``"timeout"`` (seconds) and
``"memory_mb"``. Which code runs: ``extract="defining"`` (the default: the last block that
defines a name the tests call, with the definitions it uses from earlier blocks; see
``code_extract``), the reply's last fenced block (``last_block``), its first (``first_block``)
or the whole reply (``whole``); blocks tagged with another language (```` ```bash ````) are skipped.

Reasons: ``correct``, ``no_code``, ``bad_reference``, or the sandbox's status (``failed``,
``timeout``, ``memory``, ``runtime_error``, ``compile_error``, ``sandbox_error``).
``sandbox_error`` means the sandbox could not judge (Docker down, image missing): reward 0 and
``details["sandbox_error"] = True``, so a trainer can tell it from a wrong answer.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Sequence

from reasoner.sandbox import LANGUAGES, CallTests, Case, Execution, FunctionTests, Job, Limits, PytestTests, StdioTests
from reasoner.verifiers import Verdict, Verifier
from reasoner.verifiers.code_extract import EXTRACT, code_blocks, extract_code, wanted_names

REWARDS = ("binary", "fraction")

def tests_of(reference: Any) -> tuple[FunctionTests | CallTests | PytestTests | StdioTests, str]:
    """The sandbox tests and language an example's reference describes; ValueError if it is malformed."""
    if not isinstance(reference, dict):
        raise ValueError(f"a code reference is a dict with 'tests', 'cases', 'fn_name' or 'pytest', "
                         f"not {type(reference).__name__}")
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
    if "fn_name" in reference:
        inputs, outputs = reference.get("inputs"), reference.get("outputs")
        if not isinstance(inputs, (list, tuple)) or not isinstance(outputs, (list, tuple)):
            raise ValueError("call tests need 'inputs' (a list of argument lists) and 'outputs' (a list)")
        return CallTests(reference["fn_name"], tuple(inputs), tuple(outputs), reference.get("class_name"),
                         bool(reference.get("unwrap_outputs", False))), language
    if "pytest" in reference:
        source, module = reference["pytest"], reference.get("module", "solution")
        if not isinstance(source, str) or not source.strip() or not isinstance(module, str):
            raise ValueError("'pytest' must be pytest test code (a string) and 'module' a module name")
        return PytestTests(source, module), language
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

    def __init__(self, extract: str = "defining", workers: int = 2, timeout: float = 10.0, memory_mb: int = 512,
                 image: str | None = None, hosts: str | Sequence[str] | None = None, sandbox=None,
                 reward: str = "binary"):
        from reasoner.sandbox import hosts as hostlist
        if extract not in EXTRACT:
            raise ValueError(f"extract must be one of {', '.join(EXTRACT)}, not {extract!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, not {reward!r}")
        self.extract = extract
        self.reward = reward
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
        code = extract_code(completion, self.extract, language, wanted_names(tests))
        if code is None:
            return Verdict(0.0, False, "no_code", {"extract": self.extract})
        prefix = reference.get("prefix") or ""
        program = prefix + ("\n" if prefix and not prefix.endswith("\n") else "") + code
        try:
            return Job(program, tests, limits, language, all_tests=self.reward == "fraction")
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
        return [p if isinstance(p, Verdict) else self.verdict(p.result(), self.reward) for p in pending]

    @staticmethod
    def verdict(execution: Execution, reward: str = "binary") -> Verdict:
        """``reward="fraction"``: tests passed / total (0 for a sandbox error or a job with no
        count, e.g. one killed by its timeout); ``ok`` is True only when every test passed."""
        ok = execution.status == "passed"
        details: dict[str, Any] = {"status": execution.status, "seconds": execution.seconds}
        for key in ("error", "test", "test_line", "test_name", "case", "expected", "tests_passed", "tests_total"):
            if key in execution.details:
                details[key] = execution.details[key]
        if execution.stderr:
            details["stderr"] = execution.stderr[-1000:]
        if execution.status == "sandbox_error":
            details["sandbox_error"] = True
        score = 1.0 if ok else 0.0
        passed, total = execution.details.get("tests_passed"), execution.details.get("tests_total")
        if (reward == "fraction" and not ok and execution.status != "sandbox_error" and type(passed) is int
                and type(total) is int and 0 <= passed < total):
            score = passed / total
        return Verdict(score, ok, "correct" if ok else execution.status, details)

    def close(self) -> None:
        if self._sandbox is not None and self._owns_sandbox:
            self._sandbox.close()
            self._sandbox = None


__all__ = ["CodeVerifier", "EXTRACT", "REWARDS", "code_blocks", "extract_code", "tests_of"]
