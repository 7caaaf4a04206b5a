"""Run untrusted programs in hardened Docker containers.

Contract (docs/sandbox.md has the threat model and the reason for every container setting)::

    Sandbox.run(program, tests, limits) -> Execution(status, stdout, stderr, seconds, details)

``tests`` is a `FunctionTests` (test code that calls the program's functions: MBPP asserts or
HumanEval's ``check(candidate)``), a `CallTests` (APPS/LeetCode-style calls: a function name,
argument lists and expected values, all data), a `PytestTests` (KodCode-style pytest functions
that ``from solution import ...``) or a `StdioTests` (stdin/stdout cases). ``status`` is one of
`STATUSES`; ``details["tests_passed"]`` and ``details["tests_total"]`` count the tests (each
assert line, call, pytest function or case; see `Job.all_tests`). Only the test harness, after every test has run, can produce ``passed``: the
program runs in another process and its values reach the tests as plain data (see
``sandbox/inside/harness.py``).

This package knows nothing about verifiers or training and imports no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Union

STATUSES = ("passed", "failed", "timeout", "memory", "runtime_error", "compile_error", "sandbox_error")
LANGUAGES = ("python", "cpp")


@dataclass(frozen=True)
class Limits:
    """Resource bounds for one execution."""

    timeout: float = 10.0
    """Wall-clock seconds for the whole job (compile, load, every test); killed when it runs past."""
    memory_mb: int = 512
    """Address space of each program process in MiB (RLIMIT_AS); the container's cgroup adds headroom."""
    max_output: int = 65536
    """Bytes of stdout and of stderr kept; the rest is counted and dropped."""

    def __post_init__(self):
        if not (0 < self.timeout <= 3600):
            raise ValueError(f"timeout must be in (0, 3600] seconds, got {self.timeout}")
        if not (16 <= self.memory_mb <= 65536):
            raise ValueError(f"memory_mb must be in [16, 65536], got {self.memory_mb}")
        if self.max_output < 0:
            raise ValueError("max_output must be >= 0")


@dataclass(frozen=True)
class FunctionTests:
    """Test code run against the program's functions.

    ``source`` is Python that calls the program's top-level functions by name (MBPP-style
    ``assert f(1) == 2`` lines) and/or defines ``check(candidate)`` (HumanEval), which is then
    called with the function named ``entry_point``. Names the test code defines win over the
    program's. Python programs only.
    """

    source: str
    entry_point: str | None = None


@dataclass(frozen=True)
class Case:
    """One stdin/stdout case. ``output=None`` means only a clean exit (status 0) counts."""

    input: str = ""
    output: str | None = None


@dataclass(frozen=True)
class StdioTests:
    """Cases run one after another, each in a fresh process; outputs are compared token by token
    (any run of whitespace equals any other, leading and trailing whitespace is ignored)."""

    cases: tuple[Case, ...]

    def __post_init__(self):
        object.__setattr__(self, "cases", tuple(self.cases))
        if not self.cases:
            raise ValueError("StdioTests needs at least one case")


FLOAT_TOLERANCE = 1e-6
"""`CallTests` compare floats with ``math.isclose(rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)``."""


@dataclass(frozen=True)
class CallTests:
    """Calls of one function with argument lists, each result compared with its expected value.

    ``inputs[k]`` is the list of positional arguments of call k and ``outputs[k]`` its expected
    result: JSON data only, never code. With ``class_name`` (LeetCode's ``Solution``) each call is
    ``class_name().fn_name(*args)`` on a fresh instance. The result crosses from the program as
    plain data and is compared here: tuples equal lists, ``bool`` equals only ``bool``, numbers
    with a float among them are close (`FLOAT_TOLERANCE`), dict keys and everything else exactly;
    an object that is not plain data equals nothing. ``unwrap_outputs`` (APPS/TACO store many
    expected values as a one-item list) also accepts the single item of such an output.
    """

    fn_name: str
    inputs: tuple
    outputs: tuple
    class_name: str | None = None
    unwrap_outputs: bool = False

    def __post_init__(self):
        import json
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if not (isinstance(self.fn_name, str) and self.fn_name.isidentifier()):
            raise ValueError(f"fn_name must be an identifier, not {self.fn_name!r}")
        if self.class_name is not None and not (isinstance(self.class_name, str) and self.class_name.isidentifier()):
            raise ValueError(f"class_name must be an identifier, not {self.class_name!r}")
        if not self.inputs or len(self.inputs) != len(self.outputs):
            raise ValueError(f"CallTests needs as many outputs as inputs, at least one "
                             f"({len(self.inputs)} inputs, {len(self.outputs)} outputs)")
        if not all(isinstance(args, (list, tuple)) for args in self.inputs):
            raise ValueError("each input is a list of positional arguments")
        try:
            json.dumps([self.inputs, self.outputs], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"inputs and outputs must be JSON data: {exc}") from None


@dataclass(frozen=True)
class PytestTests:
    """pytest-style test code (KodCode): ``from solution import f`` and ``def test_*():`` functions.

    Run in the test harness, never in the program's process: ``module`` (``solution``) imports
    as the program's functions, ``import pytest`` as a small built-in subset (``raises``,
    ``approx``, ``mark.parametrize``, ``fixture``, ``skip``, ``fail``). Each ``test_*`` function
    (each parameter set) and each ``test_*`` method of a ``Test*`` class is one test; only
    functions the test code defines are collected.
    """

    source: str
    module: str = "solution"


Tests = Union[FunctionTests, CallTests, PytestTests, StdioTests]
PYTHON_ONLY = (FunctionTests, CallTests, PytestTests)


@dataclass(frozen=True)
class Job:
    """A program, its tests and the limits it runs under."""

    program: str
    tests: Tests = field(default_factory=lambda: StdioTests((Case(),)))
    limits: Limits | None = None
    language: str = "python"
    all_tests: bool = False
    """Run every test even after one fails, so that ``tests_passed`` counts them all (partial
    credit); by default the job stops at the first failure."""

    def __post_init__(self):
        if self.language not in LANGUAGES:
            raise ValueError(f"language {self.language!r} is not one of {', '.join(LANGUAGES)}")
        if isinstance(self.tests, PYTHON_ONLY) and self.language != "python":
            raise ValueError("function, call and pytest tests need a Python program; use StdioTests for other languages")
        if not isinstance(self.tests, (*PYTHON_ONLY, StdioTests)):
            raise TypeError(f"tests must be FunctionTests, CallTests, PytestTests or StdioTests, "
                            f"not {type(self.tests).__name__}")


@dataclass(frozen=True)
class Execution:
    """The outcome of one program run under its tests."""

    status: str
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SandboxUnavailable(RuntimeError):
    """Docker or the sandbox image is missing; the message says how to fix it."""


def __getattr__(name: str):
    # The pool pulls in the Docker client library; load it only when asked for.
    if name == "Sandbox":
        from reasoner.sandbox.pool import Sandbox

        return Sandbox
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")


__all__ = ["CallTests", "Case", "Execution", "FunctionTests", "PytestTests", "Job", "LANGUAGES", "Limits", "STATUSES", "Sandbox",
           "SandboxUnavailable", "StdioTests", "Tests"]
