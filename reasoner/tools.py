"""Tools a model may call while it writes (``--tools python``): plugins of the ``reasoner.tools`` group.

A tool says how a call is found in the model's text and runs calls, returning text::

    class Tool:
        name = "python"
        stop = ("```\\n",)              # stop strings: where a call may end (the sampler pauses there)
        output_open, output_close = "```output\\n", "```\\n"   # what wraps the output in the trajectory

        def find(self, text) -> ToolCall | None      # the first complete call in the model's new text
        def run_many(self, histories) -> list[ToolResult]   # one per trajectory: its earlier calls + the new one
        def close(self)

``run_many`` gets, per trajectory, the codes of that trajectory's earlier successful calls and the
new call last, so a tool can give each trajectory its own state (the ``python`` tool replays them).
It never raises for the model's code: an error or a timeout is a ``ToolResult`` with ``error=True``
and text saying what happened, which the model reads like any other output.

A plugin is an entry point ``reasoner.tools`` -> a class (or factory) called with the tool's
options (``--tool-option python.timeout=5``); ``reasoner.plugins`` loads it like verifiers and tasks.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from reasoner import plugins

GROUP = "reasoner.tools"


@dataclass(frozen=True)
class ToolCall:
    code: str
    """What the tool runs (for ``python``: the cell's source)."""
    end: int
    """Offset in the searched text just past the call (its closing fence)."""


@dataclass(frozen=True)
class ToolResult:
    output: str
    """What the model reads next (before truncation to ``tool_output_tokens``)."""
    error: bool = False
    """The call failed: an exception, a timeout, a memory limit, or the tool itself unavailable."""
    seconds: float = 0.0


class Tool(Protocol):
    name: str
    stop: tuple[str, ...]
    output_open: str
    output_close: str

    def find(self, text: str) -> ToolCall | None: ...

    def run_many(self, histories: Sequence[Sequence[str]]) -> list[ToolResult]: ...

    def close(self) -> None: ...


def available() -> list[str]:
    return sorted(plugins.find(GROUP))


def load(name: str, options: dict[str, Any] | None = None) -> Tool:
    """The tool called ``name``, built with ``options``; ValueError names the known ones."""
    found = plugins.find(GROUP)
    if name not in found:
        raise ValueError(f"unknown tool {name!r} (known: {', '.join(sorted(found)) or 'none'})"
                         f"{plugins.unknown_hint(GROUP, name)}")
    return found[name].load()(**(options or {}))


def parse_names(spec: str | None) -> list[str]:
    """``"python"`` or ``"python,calc"`` -> names; empty -> []."""
    return [part.strip() for part in (spec or "").split(",") if part.strip()]


# ---- the built-in python tool -----------------------------------------------------------------

_CALL = re.compile(r"```(?:python|py|python3)[ \t]*\n(.*?)```", re.DOTALL)

# One sandbox job per call: the trajectory's earlier cells run again first, their output
# discarded, then the new cell; only the new cell's output is shown. A last bare expression is
# shown like a notebook shows it (``123 * 456`` prints 56088).
RUNNER = '''\
import ast, contextlib, io, sys, traceback
CELLS = {cells!r}
scope = {{"__name__": "__main__"}}

def run(source, show):
    try:
        tree = ast.parse(source, "<cell>", "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), scope)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), scope)
            if show and value is not None:
                print(repr(value))
        return True
    except BaseException as exc:
        if show:
            sys.stdout.flush()
            print("".join(traceback.format_exception_only(type(exc), exc)).strip(), file=sys.stderr)
        return False

for cell in CELLS[:-1]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        run(cell, False)
sys.exit(0 if run(CELLS[-1], True) else 1)
'''


class PythonTool:
    """Runs fenced ```` ```python ```` cells in the Docker sandbox, with the code verifier's limits.

    Each trajectory sees its own earlier cells' variables: a call is one sandbox job that replays
    the trajectory's earlier successful cells (output discarded) and then runs the new one. Jobs
    of different trajectories share nothing (each is a fresh process in a scrubbed container)."""

    name = "python"
    stop = ("```\n",)
    output_open = "```output\n"
    output_close = "```\n"

    def __init__(self, timeout: float = 10.0, memory_mb: int = 512, workers: int = 2, image: str | None = None,
                 hosts: str | None = None, sandbox=None):
        from reasoner.sandbox import Limits

        self.limits = Limits(timeout=float(timeout), memory_mb=int(memory_mb))
        self.workers, self.image, self.hosts = int(workers), image, hosts
        self._sandbox, self._owns = sandbox, sandbox is None

    @property
    def sandbox(self):
        if self._sandbox is None:
            from reasoner.sandbox.pool import Sandbox

            kwargs = {"image": self.image} if self.image else {}
            self._sandbox = Sandbox(workers=self.workers, limits=self.limits, hosts=self.hosts, **kwargs)
        return self._sandbox

    def find(self, text: str) -> ToolCall | None:
        m = _CALL.search(text)
        if m is None or not m.group(1).strip():
            return None
        end = m.end() + (1 if text[m.end():m.end() + 1] == "\n" else 0)
        return ToolCall(m.group(1), end)

    def run_many(self, histories: Sequence[Sequence[str]]) -> list[ToolResult]:
        from reasoner.sandbox import Job

        start = time.perf_counter()
        try:
            futures = [self.sandbox.submit(Job(RUNNER.format(cells=list(cells)), limits=self.limits))
                       for cells in histories]
            executions = [f.result() for f in futures]
        except Exception as exc:  # noqa: BLE001 - the model reads that the tool is down; training goes on
            return [ToolResult(f"ToolError: the sandbox could not run the cell ({type(exc).__name__})", True,
                               time.perf_counter() - start)] * len(histories)
        return [self._result(e) for e in executions]

    def _result(self, execution) -> ToolResult:
        text = execution.stdout + execution.stderr
        status = execution.status
        if status == "timeout":
            text += f"TimeoutError: the cell ran past {self.limits.timeout:g} s\n"
        elif status == "memory":
            text += f"MemoryError: the cell went over {self.limits.memory_mb} MiB\n"
        elif status == "sandbox_error":
            text = f"ToolError: the sandbox is unavailable ({execution.details.get('error', '')})\n"
        elif "output longer than" in str(execution.details.get("error", "")):
            text += "\n[the cell's output was cut: too long]\n"
        return ToolResult(text, status != "passed", execution.seconds)

    def close(self) -> None:
        if self._owns and self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
