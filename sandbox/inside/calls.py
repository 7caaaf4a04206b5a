"""The harness's side of call-based tests (APPS/TACO ``fn_name``, LeetCode's ``Solution().f``).

The arguments and expected values are JSON data from the tests frame; they never reach the
program's process except as the arguments of each call. Each call's result comes back as
plain data (``wire.decode``: an object of the program's making stays a `Remote`, which equals
nothing) and `same` compares it here, so no ``__eq__`` of the program's runs.
"""

from __future__ import annotations

import math

from reasoner.sandbox.inside.harness import Link, ProgramGone, loaded, offered_names, program_failure, counted

FLOAT_TOLERANCE = 1e-6  # sandbox.FLOAT_TOLERANCE
MAX_DEPTH = 100


def same(got, expected, depth: int = 0) -> bool:
    """``got`` (plain data from the program) equals ``expected`` (JSON data): tuples equal lists,
    bool only bool, numbers close when a float is involved, everything else exactly."""
    if depth > MAX_DEPTH:
        return False
    if type(expected) is bool or type(got) is bool:
        return type(got) is bool and type(expected) is bool and got == expected
    if type(expected) in (int, float) and type(got) in (int, float):
        if type(expected) is int and type(got) is int:
            return got == expected
        return math.isclose(got, expected, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_TOLERANCE)
    if type(expected) is list and type(got) in (list, tuple):
        return len(got) == len(expected) and all(same(g, e, depth + 1) for g, e in zip(got, expected))
    if type(expected) is dict and type(got) is dict:
        return (len(got) == len(expected) and all(type(k) is str for k in got)
                and all(k in expected and same(v, expected[k], depth + 1) for k, v in got.items()))
    if expected is None or type(expected) is str:
        return type(got) is type(expected) and got == expected
    return False


def accepted(got, expected, unwrap: bool) -> bool:
    if same(got, expected):
        return True
    return unwrap and type(expected) is list and len(expected) == 1 and same(got, expected[0])


def run_calls(link: Link, tests: dict) -> dict:
    failure, ready = loaded(link)
    if failure:
        return failure
    fn, cls = tests.get("fn_name"), tests.get("class_name")
    inputs, outputs = tests.get("inputs"), tests.get("outputs")
    if type(fn) is not str or type(inputs) is not list or type(outputs) is not list or len(inputs) != len(outputs):
        return {"status": "sandbox_error", "details": {"error": "malformed call tests"}}
    offered = offered_names(link, ready)
    owner = cls if type(cls) is str else fn
    if owner not in offered:
        what = f"class {cls!r}" if type(cls) is str else f"function {fn!r}"
        return counted({"status": "failed", "details": {"error": f"the program defines no {what}"}},
                       0, len(inputs), link)
    keep_going = tests.get("all_tests") is True
    first, passed = None, 0
    for k, (args, expected) in enumerate(zip(inputs, outputs)):
        try:
            target = getattr(offered[cls](), fn) if type(cls) is str else offered[fn]
            got = target(*(args if type(args) is list else [args]))
            ok = accepted(got, expected, tests.get("unwrap_outputs") is True)
            if not ok:
                failed = {"status": "failed", "details": {"case": k, "error": f"call {k}: wrong result",
                                                          "expected": _short(expected), "got": _short(got)}}
        except ProgramGone:
            raise
        except BaseException as exc:  # noqa: BLE001 - the program's exception, re-raised here
            ok, failed = False, program_failure(exc, [])
            failed["details"]["case"] = k
        if ok:
            passed += 1
            continue
        first = first or failed
        if not keep_going:
            break
    return counted(first, passed, len(inputs), link)


def _short(value) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = "<unprintable>"
    return text[:500]
