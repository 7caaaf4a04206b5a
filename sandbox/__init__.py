"""Run untrusted programs in hardened Docker containers.

Contract (see docs/sandbox.md for the threat model)::

    Sandbox.run(program, tests, limits) -> Execution(status, stdout, stderr, seconds)

``status`` is one of ``passed``, ``failed``, ``timeout``, ``memory``, ``runtime_error``,
``compile_error``, ``sandbox_error``. This package knows nothing about verifiers or training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("passed", "failed", "timeout", "memory", "runtime_error", "compile_error", "sandbox_error")


@dataclass(frozen=True)
class Limits:
    """Resource bounds for one execution."""

    timeout: float = 10.0
    """Wall-clock seconds before the job is killed from outside."""
    memory_mb: int = 512
    """Address-space / cgroup memory bound in MiB."""
    max_output: int = 65536
    """Bytes of stdout and of stderr kept; the rest is dropped."""


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


__all__ = ["Execution", "Limits", "STATUSES"]
