"""The harness's side of stdin/stdout cases: one fresh process per case, outputs compared here.

The program's process (`candidate.serve_stdio`) holds only the program; for each case this
side makes the stdin and stdout pipes, hands their far ends over the socket, feeds the input
and reads the output itself. The expected outputs never leave this process.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import threading
import time

from reasoner.sandbox.inside import candidate, wire
from reasoner.sandbox.inside.harness import Link, loaded, oom_kills

SLACK = 4096  # bytes of output beyond twice the expected length before a case stops early


def same_tokens(got: bytes, expected: bytes) -> bool:
    """Whitespace-tolerant comparison: equal sequences of whitespace-separated tokens."""
    return got.split() == expected.split()


def run_cases(link: Link, tests: dict, job: dict) -> dict:
    """Each case in a fresh process; stops at the first failing one unless ``all_tests``."""
    started = time.monotonic()
    failure, _ready = loaded(link)
    if failure:
        return failure
    limits = job["limits"]
    cases = tests["cases"]
    keep_going = tests.get("all_tests") is True
    shown, first, passed = b"", None, 0
    for k, case in enumerate(cases):
        expected = None if case.get("output") is None else str(case["output"]).encode("utf-8", "surrogatepass")
        cap = limits["max_output"] if expected is None else max(limits["max_output"], 2 * len(expected) + SLACK)
        cpu = max(1.0, limits["timeout"] - (time.monotonic() - started))
        out, overflow, code = _run_one(link, str(case.get("input", "")).encode("utf-8", "surrogatepass"), cap, cpu)
        details = {"case": k, "cases": len(cases), "exit_status": code, "stdout_bytes": len(out)}
        status = _classify(code, link, overflow and expected is not None)
        if status is None and expected is not None and not same_tokens(out, expected):
            status = "failed"
        if status is None:
            passed += 1
            if first is None:
                shown = out[:limits["max_output"]]
            continue
        if first is None:
            if expected is not None:
                details["expected"] = expected[:1000].decode("utf-8", "replace")
            if overflow:
                details["error"] = f"output longer than {cap} bytes"
            first = {"status": status, "stdout": out[:limits["max_output"]].decode("utf-8", "replace"),
                     "details": details}
        if not keep_going:
            break
    counts = {"tests_passed": passed, "tests_total": len(cases)}
    if first is not None:
        first["details"].update(counts)
        return first
    return {"status": "passed", "stdout": shown.decode("utf-8", "replace"),
            "details": {"cases": len(cases), "stdout_bytes": len(shown), **counts}}


def _classify(code: int, link: Link, stopped_for_output: bool) -> str | None:
    if stopped_for_output:
        return "failed"
    if code == -signal.SIGXCPU:
        return "timeout"
    if code == candidate.MEMORY_EXIT or (code == -signal.SIGKILL and oom_kills() not in (None, link.oom_before)):
        return "memory"
    return "runtime_error" if code != 0 else None


def _run_one(link: Link, data: bytes, cap: int, cpu: float) -> tuple[bytes, bool, int]:
    """Run one case: ``(stdout kept, whether it overflowed cap, exit status)``."""
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        socket.send_fds(link.sock, [wire.pack({"cpu": cpu})], [in_r, out_w])
    except OSError:
        link._break(None)
    finally:
        os.close(in_r)
        os.close(out_w)
    pid = link.receive().get("pid")
    if type(pid) is not int:
        link._break("protocol violation: no pid")
    _feed(in_w, data)
    kept, size, overflow = [], 0, False
    sock = link.sock.fileno()
    try:
        while True:
            ready = select.select([out_r, sock], [], [])[0]
            if out_r in ready:
                chunk = os.read(out_r, 1 << 16)
                if chunk and not overflow:
                    kept.append(chunk)
                    size += len(chunk)
                    if size > cap:
                        overflow = True
                        _kill(pid)
            if sock in ready:
                break
        ended = link.receive()
        fcntl.fcntl(out_r, fcntl.F_SETFL, os.O_NONBLOCK)
        while not overflow:  # what the program wrote before it exited is in the pipe now
            try:
                chunk = os.read(out_r, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            kept.append(chunk)
            size += len(chunk)
            overflow = size > cap
    finally:
        os.close(out_r)
    code = ended.get("exit")
    if type(code) is not int:
        link._break("protocol violation: no exit status")
    return b"".join(kept)[:cap], overflow, code


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _feed(fd: int, data: bytes) -> None:
    """Write a case's input from a thread (a program may never read it), then close the pipe."""
    def feed():
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view[:1 << 16]):]
        except OSError:
            pass
        finally:
            os.close(fd)
    threading.Thread(target=feed, daemon=True).start()
