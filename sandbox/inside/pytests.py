"""The harness's side of pytest-style tests (KodCode): ``from solution import f`` and ``def test_*``.

The test code runs here, in the trusted harness, never in the program's process. Its imports
of the solution module give the program's functions as `Remote`s; ``import pytest`` gives the
small subset below (pytest itself is not in the image and would not be trusted code). Only the
functions the test code itself defines (``test_*`` at top level, ``test_*`` methods of
``Test*`` classes) are collected, each parameter set of ``mark.parametrize`` counting as one
test, so a program cannot add, remove or rename tests.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import itertools
import re
import types

from reasoner.sandbox.inside.harness import Link, ProgramGone, counted, loaded, offered_names, program_failure

MAX_TESTS = 10_000
MAX_FIXTURE_DEPTH = 20


class Skipped(BaseException):
    """``pytest.skip()``: the test does not count."""


class Failed(AssertionError):
    """``pytest.fail()`` or a ``raises`` block that did not raise."""


def fail(reason: str = "", pytrace: bool = True):
    raise Failed(reason)


def skip(reason: str = "", **_):
    raise Skipped(reason)


class ExceptionInfo:
    def __init__(self):
        self.type = self.value = self.tb = None

    def match(self, pattern) -> bool:
        if not re.search(pattern, str(self.value)):
            raise AssertionError(f"pattern {pattern!r} not found in {str(self.value)!r}")
        return True


class RaisesContext:
    def __init__(self, expected, match=None):
        self.expected, self.pattern, self.info = expected, match, ExceptionInfo()

    def __enter__(self) -> ExceptionInfo:
        return self.info

    def __exit__(self, kind, value, tb) -> bool:
        if kind is None:
            raise Failed(f"DID NOT RAISE {self.expected}")
        if issubclass(kind, (ProgramGone, Skipped)) or not issubclass(kind, self.expected):
            return False  # the program's process is gone: no test may catch that
        self.info.type, self.info.value, self.info.tb = kind, value, tb
        if self.pattern is not None:
            self.info.match(self.pattern)
        return True


def raises(expected, *args, match=None, **kwargs):
    context = RaisesContext(expected, match)
    if not args:
        return context
    with context:
        args[0](*args[1:], **kwargs)
    return context.info


class approx:  # noqa: N801 - pytest's name
    """``pytest.approx``: numbers within ``rel`` (default 1e-6) or ``abs`` (default 1e-12), also
    element by element in lists, tuples and dict values."""

    def __init__(self, expected, rel=None, abs=None, nan_ok=False):  # noqa: A002 - pytest's names
        self.expected, self.rel, self.abs = expected, rel, abs

    def _close(self, got, expected) -> bool:
        if type(got) in (list, tuple) and type(expected) in (list, tuple):
            return len(got) == len(expected) and all(self._close(g, e) for g, e in zip(got, expected))
        if type(got) is dict and type(expected) is dict:
            return got.keys() == expected.keys() and all(self._close(got[k], expected[k]) for k in expected)
        numbers = (int, float, complex)
        if type(got) in numbers and type(expected) in numbers and type(got) is not bool:
            if got == expected:
                return True
            tolerance = max(1e-6 * builtins.abs(expected) if self.rel is None else self.rel * builtins.abs(expected),
                            1e-12 if self.abs is None else self.abs)
            return builtins.abs(got - expected) <= tolerance
        return type(got) is type(expected) and got == expected

    def __eq__(self, other) -> bool:
        return self._close(other, self.expected)

    def __ne__(self, other) -> bool:
        return not self.__eq__(other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"approx({self.expected!r})"


class MarkDecorator:
    def __init__(self, name: str, args=(), kwargs=None, configured: bool = False):
        self.name, self.args, self.kwargs, self.configured = name, args, kwargs or {}, configured

    def __call__(self, *args, **kwargs):
        bare = len(args) == 1 and not kwargs and isinstance(args[0], (types.FunctionType, type))
        if self.configured or bare:  # ``@mark.name(...)`` applied, or a bare ``@mark.name``
            target = args[0]
            target._marks = [self, *getattr(target, "_marks", ())]
            return target
        return MarkDecorator(self.name, args, kwargs, configured=True)


class Mark:
    def __getattr__(self, name: str) -> MarkDecorator:
        if name.startswith("__"):
            raise AttributeError(name)
        return MarkDecorator(name)


class ParameterSet(tuple):
    """``pytest.param(*values)``."""


def param(*values, **_):
    return ParameterSet(values)


def fixture(fn=None, **_):
    def mark(f):
        f._fixture = True
        return f
    return mark(fn) if callable(fn) else mark


def shim() -> types.ModuleType:
    module = types.ModuleType("pytest")
    for name, value in {"raises": raises, "approx": approx, "mark": Mark(), "fixture": fixture, "skip": skip,
                        "fail": fail, "param": param, "Skipped": Skipped, "Failed": Failed}.items():
        setattr(module, name, value)
    return module


def _parameter_sets(fn) -> list[dict]:
    """One dict of arguments per parameter set of the ``parametrize`` marks (one empty dict without)."""
    axes = []
    for mark in getattr(fn, "_marks", ()):
        if mark.name != "parametrize" or len(mark.args) < 2:
            continue
        names = mark.args[0]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        sets = []
        for values in mark.args[1]:
            if len(names) == 1:
                values = tuple(values) if isinstance(values, ParameterSet) else (values,)
            sets.append(dict(zip(names, values)))
        axes.append(sets)
    out = [{}]
    for sets in axes:
        out = [{**a, **b} for a, b in itertools.product(out, sets)]
    return out


def _skipped(fn) -> bool:
    """``mark.skip``, a ``mark.skipif`` whose condition holds, or ``mark.xfail`` (a test expected
    to fail says nothing about the program): not counted."""
    return any(m.name in ("skip", "xfail") or m.name == "skipif" and m.args and bool(m.args[0])
               for m in getattr(fn, "_marks", ()))


def collect(tree: ast.Module, namespace: dict) -> list[tuple[str, object]]:
    """``(name, callable)`` of the tests the test code defines, in order."""
    out, seen = [], set()

    def ours(fn) -> bool:
        return isinstance(fn, types.FunctionType) and fn.__code__.co_filename == "<tests>"

    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test") and node.name not in seen:
            seen.add(node.name)
            if ours(namespace.get(node.name)):
                out.append((node.name, namespace[node.name]))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test") and node.name not in seen:
            seen.add(node.name)
            cls = namespace.get(node.name)
            if not isinstance(cls, type):
                continue
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name.startswith("test") and ours(cls.__dict__.get(item.name)):
                    out.append((f"{node.name}.{item.name}", (cls, item.name)))
    return out


def written(tree: ast.Module) -> int:
    """Test functions the source defines (parameter sets not expanded): the count when it cannot run."""
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")}
    methods = {(c.name, f.name) for c in tree.body if isinstance(c, ast.ClassDef) and c.name.startswith("Test")
               for f in c.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test")}
    return len(names) + len(methods)


def _fixture_value(name: str, fixtures: dict, teardown: list, depth: int = 0):
    fn = fixtures.get(name)
    if fn is None or depth > MAX_FIXTURE_DEPTH:
        raise LookupError(f"fixture {name!r} not found (only fixtures the tests define are available)")
    kwargs = {p: _fixture_value(p, fixtures, teardown, depth + 1) for p in inspect.signature(fn).parameters}
    value = fn(**kwargs)
    if inspect.isgenerator(value):
        teardown.append(value)
        value = next(value)
    return value


def _run_one(test, arguments: dict, fixtures: dict) -> None:
    if isinstance(test, tuple):
        cls, name = test
        fn = getattr(cls(), name)
    else:
        fn = test
    teardown: list = []
    try:
        wanted = [p for p in inspect.signature(fn).parameters if p not in arguments]
        kwargs = {**arguments, **{p: _fixture_value(p, fixtures, teardown) for p in wanted}}
        fn(**kwargs)
    finally:
        for gen in reversed(teardown):
            for _ in gen:
                pass


def run_pytest(link: Link, tests: dict) -> dict:
    failure, ready = loaded(link)
    if failure:
        return failure
    source, module_name = tests.get("source"), tests.get("module") or "solution"
    try:
        tree = ast.parse(source, "<tests>")
        code = compile(tree, "<tests>", "exec")
    except (SyntaxError, ValueError, TypeError) as exc:
        return {"status": "sandbox_error", "details": {"error": f"the tests do not compile: {exc}"}}
    solution = types.ModuleType(module_name)
    for name, remote in offered_names(link, ready).items():
        setattr(solution, name, remote)
    pytest_module, real_import = shim(), builtins.__import__

    def importer(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name == module_name:
            return solution
        if level == 0 and name == "pytest":
            return pytest_module
        return real_import(name, globals, locals, fromlist, level)

    namespace = {"__name__": "__tests__", "__builtins__": {**builtins.__dict__, "__import__": importer}}
    source_lines = source.splitlines()
    try:
        exec(code, namespace)
    except ProgramGone:
        raise
    except BaseException as exc:  # noqa: BLE001 - e.g. the program lacks a name the tests import
        return counted(program_failure(exc, source_lines), 0, written(tree) or 1, link)
    fixtures = {k: v for k, v in namespace.items() if isinstance(v, types.FunctionType) and getattr(v, "_fixture", False)
                and v.__code__.co_filename == "<tests>"}
    planned = [(name, test, arguments) for name, test in collect(tree, namespace)
               for arguments in _parameter_sets(test if not isinstance(test, tuple) else getattr(*test))][:MAX_TESTS]
    if not planned:
        return {"status": "sandbox_error", "details": {"error": "the tests define no test function"}}
    keep_going = tests.get("all_tests") is True
    first, passed, total = None, 0, 0
    for name, test, arguments in planned:
        if _skipped(test if not isinstance(test, tuple) else getattr(*test)):
            continue
        total += 1
        if first is not None and not keep_going:
            continue
        try:
            _run_one(test, arguments, fixtures)
            passed += 1
        except Skipped:
            total -= 1
        except ProgramGone:
            raise
        except BaseException as exc:  # noqa: BLE001 - the test's failure or the program's exception
            failed = program_failure(exc, source_lines)
            failed["details"]["test_name"] = name
            first = first or failed
    if total == 0:
        return {"status": "sandbox_error", "details": {"error": "every test was skipped"}}
    return counted(first, passed, total, link)
