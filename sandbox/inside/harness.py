"""The test harness of one job, inside the container: the only process that decides a verdict.

It starts with file descriptors 0 (the job, from the runner), 1 and 2 (captured stdout and
stderr) and 3 (the verdict, to the runner). It reads the program, forks the program's process
(`candidate`), and only then reads the tests, so the tests never enter that process. It is
not dumpable (set by the runner, inherited), so the program can neither trace it nor open its
file descriptors through ``/proc``; the verdict pipe exists only here.

Function tests run *here*, in trusted code: each name the program defines becomes a `Remote`
whose calls cross to the program's process and whose results come back as plain data. A
verdict of ``passed`` needs the test code to finish without an exception **and** the program's
process to have answered every call: an exit, a crash or a protocol violation is sticky.
Call tests (``calls``) and pytest tests (``pytests``) run here the same way; every kind
reports ``tests_passed`` / ``tests_total``, counted from the tests, never from the program.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import os
import signal
import socket
import traceback

from reasoner.sandbox.inside import candidate, privileges, wire


class ProgramGone(BaseException):
    """The program's process exited, died or broke the protocol; no later call can succeed.
    A BaseException so that ``except Exception`` in test code does not swallow it."""


class ProgramError(Exception):
    """Base of exceptions raised inside the program and re-raised here."""


_RAISED: dict[str, type] = {}
# Exceptions that steer iteration or the interpreter rather than report an error: one of these
# from the program must never end a test's ``map``/``zip``/generator silently, or stop the tests.
# Like PEP 479 they reach the tests as a RuntimeError (a runtime_error verdict).
CONTROL_FLOW = frozenset({"StopIteration", "StopAsyncIteration", "GeneratorExit", "KeyboardInterrupt",
                          "SystemExit"})


def raised(info: dict) -> BaseException:
    """An exception to raise in the tests for one the program raised: a subclass of the built-in
    exception of the same name (so ``except ValueError`` in tests works) and of ProgramError."""
    name, message = str(info.get("type", "Exception"))[:100], str(info.get("message", ""))[:2000]
    cls = _RAISED.get(name)
    if cls is None:
        base = getattr(builtins, name, None)
        if name in CONTROL_FLOW or (isinstance(base, type) and issubclass(base, (StopIteration, StopAsyncIteration))):
            cls = _RAISED.setdefault(name, type(name, (RuntimeError, ProgramError), {}))
        elif isinstance(base, type) and issubclass(base, Exception) and base is not ProgramError:
            try:
                cls = type(name, (base, ProgramError), {})
            except TypeError:
                cls = None
        cls = _RAISED.setdefault(name, cls or type(name, (ProgramError,), {}))
    try:
        exc = cls(message)
    except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs five arguments
        exc = type(name, (ProgramError,), {})(message)
    exc.program_traceback = str(info.get("traceback", ""))
    return exc


class Link:
    """This end of the socket to the program's process."""

    def __init__(self, sock: socket.socket, pid: int, oom_before: int | None):
        self.sock, self.pid, self.oom_before = sock, pid, oom_before
        self.broken: str | None = None
        self.gone_status = "runtime_error"
        self.calls = 0

    def receive(self):
        try:
            msg = wire.read_frame(self.sock.fileno())
        except (wire.WireError, OSError) as exc:
            msg = None
            self._break(f"protocol violation: {exc}")
        if msg is None:
            self._break(None)
        if type(msg) is not dict:
            self._break("protocol violation: not a message")
        return msg

    def _break(self, reason: str | None):
        if self.broken is None:
            self.broken, self.gone_status = self._how_it_ended(reason)
        raise ProgramGone(self.broken)

    def _how_it_ended(self, reason: str | None) -> tuple[str, str]:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        status = os.waitpid(self.pid, 0)[1]
        code = os.waitstatus_to_exitcode(status)
        if reason is None:
            reason = f"exited with status {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"
        if code == -signal.SIGXCPU:
            return f"program ran out of CPU time ({reason})", "timeout"
        if oom_kills() not in (None, self.oom_before) and code == -signal.SIGKILL:
            return f"program ran out of memory ({reason})", "memory"
        return f"the program's process ended before the tests finished: {reason}", "runtime_error"

    def request(self, msg: dict):
        if self.broken is not None:
            raise ProgramGone(self.broken)
        self.calls += 1
        try:
            self.sock.sendall(wire.pack(msg))
        except OSError:
            self._break(None)
        except (TypeError, wire.WireError) as exc:
            raise TypeError(f"cannot pass this to the program: {exc}") from None
        reply = self.receive()
        if "ok" in reply:
            try:
                return wire.decode(reply["ok"], self.remote)
            except (wire.WireError, RecursionError, ValueError) as exc:
                self._break(f"protocol violation: {exc}")
        if "raise" in reply and type(reply["raise"]) is dict:
            raise raised(reply["raise"])
        if "exit" in reply:
            self._break(f"the program called exit({reply['exit']}) during a test")
        self._break("protocol violation: unexpected reply")

    def remote(self, ref: int, type_name: str) -> "Remote":
        return Remote(self, ref, type_name)


class Remote:
    """An object in the program's process. Calls, attributes, ``len``, ``in``, indexing,
    iteration, ``str`` and ``bool`` are answered by the program *as plain data*; equality and
    hashing are identity, here, never the program's ``__eq__``."""

    __slots__ = ("_link", "_ref", "_type")

    def __init__(self, link: Link, ref: int, type_name: str):
        self._link, self._ref, self._type = link, ref, type_name

    def _op(self, op: str, **extra):
        return self._link.request({"op": op, "ref": self._ref, **extra})

    def __call__(self, *args, **kwargs):
        return self._op("call", args=to_wire(list(args)), kwargs=to_wire(dict(kwargs)))

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._op("getattr", name=name)

    def __getitem__(self, key):
        return self._op("getitem", arg=to_wire(key))

    def __contains__(self, item):
        return bool(self._op("contains", arg=to_wire(item)) is True)

    def __len__(self):
        n = self._op("len")
        if type(n) is not int or n < 0:
            raise TypeError("len() of the program's object is not a non-negative int")
        return n

    def __iter__(self):
        return iter(self._op("iter"))

    def __bool__(self):
        return self._op("bool") is True

    def __str__(self):
        s = self._op("str")
        return s if type(s) is str else repr(self)

    def __repr__(self):
        return f"<program's {self._type} #{self._ref}>"


def to_wire(value):
    """A test's value as tagged JSON for the program; only plain data and `Remote`s can go."""
    return wire.encode(value, _remote_ref)


def _remote_ref(value) -> wire.Ref:
    if type(value) is Remote:
        return wire.Ref(value._ref, value._type)
    raise TypeError(f"a {type(value).__name__} cannot be passed to the program (plain data only)")


def own_limits() -> list:
    """This process's rlimits, nice value and CPU affinity (what another process of its user could change)."""
    import resource
    return [[resource.getrlimit(getattr(resource, n)) for n in sorted(dir(resource)) if n.startswith("RLIMIT_")],
            os.getpriority(os.PRIO_PROCESS, 0), sorted(os.sched_getaffinity(0))]


def oom_kills() -> int | None:
    """The container's out-of-memory kill count (cgroup v1 or v2), None if unreadable."""
    for path, key in (("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),
                      ("/sys/fs/cgroup/memory.events", "oom_kill")):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            continue
    return None


# ---- the job -----------------------------------------------------------------------------------

def main() -> None:
    """Entry point of the harness process (fds 0-3 set up by the zygote)."""
    job = wire.read_frame(0)
    if job is None:
        os._exit(0)
    oom_before = oom_kills()
    limits_before = own_limits()
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    dropped_r, dropped_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the program's process: keep only its socket and stdout/stderr
        try:
            os.close(dropped_r)
            privileges.become_program()  # its own uid, no capability: nothing trusted is reachable
            os.write(dropped_w, b"1")  # before any program code: the program cannot unsay or fake it
            os.close(dropped_w)
            os.dup2(theirs.fileno(), 3)
            os.closerange(4, 1 << 16)
            os.close(0)
            os.open("/dev/null", os.O_RDONLY)  # becomes fd 0
            sock = socket.socket(fileno=3)
            mode, limits = job["mode"], job["limits"]
            if mode == "function":
                candidate.serve_functions(sock, job["program"], limits["memory_mb"], limits["timeout"])
            else:
                candidate.serve_stdio(sock, job["program"], job["language"], limits["memory_mb"], limits["timeout"])
        except BaseException:  # noqa: BLE001 - shows in the job's stderr; the harness sees the exit
            traceback.print_exc()
        finally:
            os._exit(0)
    theirs.close()
    os.close(dropped_w)
    if os.read(dropped_r, 1) != b"1":  # never ran the program: the container is broken, not the program
        os.close(dropped_r)
        _kill_quietly(pid)
        wire.write_frame(3, {"status": "sandbox_error", "details": {
            "error": "the program's process could not switch to the program's user", "infrastructure": True}})
        os._exit(0)
    os.close(dropped_r)
    tests = wire.read_frame(0)  # only now: the program's process never had the tests in memory
    link = Link(mine, pid, oom_before)
    try:
        kind = tests.get("kind") if type(tests) is dict else None
        if job["mode"] == "function" and kind == "calls":
            from reasoner.sandbox.inside import calls
            result = calls.run_calls(link, tests)
        elif job["mode"] == "function" and kind == "pytest":
            from reasoner.sandbox.inside import pytests
            result = pytests.run_pytest(link, tests)
        elif job["mode"] == "function":
            result = run_function_tests(link, tests)
        else:
            from reasoner.sandbox.inside import stdio
            result = stdio.run_cases(link, tests, job)
    except ProgramGone:
        result = {"status": link.gone_status, "details": {"error": link.broken}}
    except Exception as exc:  # noqa: BLE001 - reported, never a pass
        if own_limits() != limits_before:  # the program lowered this process's limits: its doing
            result = {"status": "runtime_error", "details": {
                "error": f"the program changed the test harness's limits ({type(exc).__name__}: {exc})"}}
        else:
            result = {"status": "sandbox_error", "details": {"error": f"harness: {type(exc).__name__}: {exc}",
                                                             "infrastructure": True}}
    if job["mode"] == "function":
        result.setdefault("details", {})["calls"] = link.calls
    result["details"] = wire.clean_details(result.get("details"))
    if "stdout" in result:
        result["stdout"] = wire.clean_text(result["stdout"], int(job["limits"]["max_output"]))
    wire.write_frame(3, result)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os._exit(0)


def loaded(link: Link) -> tuple[dict | None, dict]:
    """Wait for the program to load: ``(failure result or None, ready message)``."""
    reply = link.receive()
    if "compile_error" in reply:
        return {"status": "compile_error", "details": {"error": reply["compile_error"]}}, {}
    if "error" in reply:
        info = reply["error"] if type(reply["error"]) is dict else {}
        status = "memory" if info.get("type") == "MemoryError" else "runtime_error"
        return {"status": status, "details": {"error": info, "phase": "load"}}, {}
    if "exit" in reply:
        return {"status": "runtime_error", "details": {"error": f"the program called exit({reply['exit']}) "
                                                                "before the tests ran", "phase": "load"}}, {}
    if type(reply.get("ready")) is not dict:
        link._break("protocol violation: no ready message")
    return None, reply["ready"]


def offered_names(link: Link, ready: dict) -> dict[str, Remote]:
    """The program's top-level callables, by name, as `Remote`s."""
    offered = {}
    names = ready.get("names")
    for name, ref in (names.items() if type(names) is dict else ()):
        if type(ref) is int and type(name) is str and name.isidentifier() and not name.startswith("__"):
            offered[name] = Remote(link, ref, "function")
    return offered


def program_failure(exc: BaseException, source_lines: list[str]) -> dict:
    """The result for an exception a test raised: the program's (re-raised here) or the test's own."""
    if isinstance(exc, ProgramError):
        _show(getattr(exc, "program_traceback", ""))
        return {"status": "memory" if isinstance(exc, MemoryError) else "runtime_error",
                "details": _failure(exc, source_lines)}
    return {"status": "failed", "details": _failure(exc, source_lines)}


def counted(first: dict | None, passed: int, total: int, link: Link) -> dict:
    """The job's result from its first failure (None: none) and the tests passed out of total."""
    if first is None and link.broken is not None:  # a call failed and the tests swallowed the error
        raise ProgramGone(link.broken)
    if first is None and link.calls == 0:
        first = {"status": "failed", "details": {"error": "the tests never called the program"}}
        passed = 0
    result = first or {"status": "passed", "details": {}}
    result.setdefault("details", {}).update(tests_passed=passed, tests_total=total)
    return result


def run_function_tests(link: Link, tests: dict) -> dict:
    """MBPP asserts and HumanEval's ``check``: the source runs one top-level statement at a time;
    each top-level ``assert`` is one test and so is the call of ``check``."""
    failure, ready = loaded(link)
    if failure:
        return failure
    try:
        tree = ast.parse(tests["source"], "<tests>")
        bound = bound_names(tests["source"])
        statements = [(isinstance(node, ast.Assert), compile(ast.Module([node], []), "<tests>", "exec"))
                      for node in tree.body]
    except (SyntaxError, ValueError) as exc:
        return {"status": "sandbox_error", "details": {"error": f"the tests do not compile: {exc}"}}
    offered = offered_names(link, ready)
    functions = {name: remote for name, remote in offered.items() if program_name_allowed(name, bound)}
    # The trusted keys go in last: nothing derived from the program can replace them.
    namespace = {**functions, "__name__": "__tests__", "__builtins__": builtins}
    source_lines = tests["source"].splitlines()
    entry = tests.get("entry_point")
    asserts = sum(is_assert for is_assert, _ in statements)
    total = asserts + (1 if entry else 0) or 1  # no assert and no check: the whole source is one test
    keep_going = tests.get("all_tests") is True
    first, passed = None, 0
    for is_assert, code in statements:
        try:
            exec(code, namespace)
        except ProgramGone:
            raise
        except BaseException as exc:  # noqa: BLE001 - AssertionError and anything else the tests raise
            first = first or program_failure(exc, source_lines)
            if is_assert and keep_going:
                continue
            return counted(first, passed, total, link)
        passed += is_assert
    if entry:
        target = offered.get(entry) if type(entry) is str else None
        if target is None:
            missing = {"status": "failed", "details": {"error": f"the program defines no function {entry!r}"}}
            return counted(first or missing, passed, total, link)
        if first is None or keep_going:
            check = namespace.get("check")
            try:
                if callable(check):
                    check(target)
                passed += 1
            except ProgramGone:
                raise
            except BaseException as exc:  # noqa: BLE001
                first = first or program_failure(exc, source_lines)
    elif asserts == 0 and first is None:
        passed = 1
    return counted(first, passed, total, link)


MAX_NAME = 200


def program_name_allowed(name, bound: frozenset[str]) -> bool:
    """Whether a name the program defines may become a global of the tests: an identifier, not
    a keyword, not private or dunder, not a builtin (``sorted``, ``abs``, ``len`` keep their
    meaning in the tests) and not a name the tests bind themselves (``check``, their imports,
    their helpers)."""
    return (type(name) is str and 0 < len(name) <= MAX_NAME and name.isidentifier() and name.isascii()
            and not keyword.iskeyword(name) and not name.startswith("_") and not hasattr(builtins, name)
            and name not in bound)


def bound_names(source: str) -> frozenset[str]:
    """Every name the tests' source binds anywhere (definitions, imports, assignments, targets)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return frozenset(names)


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _show(text: str) -> None:
    """Put the program's traceback in the job's stderr (fd 2), where Python would have put it."""
    if text:
        try:
            os.write(2, text.encode("utf-8", "replace"))
        except OSError:
            pass


def _failure(exc: BaseException, source_lines: list[str]) -> dict:
    details = {"error": f"{type(exc).__name__}: {str(exc)[:1000]}"}
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == "<tests>":
            details["test_line"] = lineno
            if 0 < lineno <= len(source_lines):
                details["test"] = source_lines[lineno - 1].strip()[:500]
    return details
