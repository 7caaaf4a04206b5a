"""The runner: PID 1 of a sandbox container. One job at a time, each in fresh processes.

Processes in a container::

    runner (PID 1)  -- stdin/stdout: frames to and from the host; never runs job code
      zygote        -- forked at start, before any job; preloads modules; forks one harness per job
        harness     -- reads the program, forks the program's process, then reads the tests
          program   -- the only process that runs untrusted code

Why a zygote: a fork costs ~0.6 ms where starting Python costs ~6 ms, and the modules programs
import most are already loaded. Why not fork from the runner: the runner has read earlier jobs
(their programs and tests) and holds the host channel; nothing forked from it after the first
job could be trusted not to find them in its memory. The zygote never reads a job: it receives
four pipe ends over a socket and forks.

The runner is not dumpable (``prctl(PR_SET_DUMPABLE, 0)``, inherited by zygote and harness):
processes of the same user can then neither ptrace it nor open ``/proc/1/fd/*``. As PID 1 of
its namespace it cannot be killed from inside by a signal it does not handle, and it ignores
the ones Python would handle. After every job it kills every other process, empties the
writable file systems, and resumes the zygote; if it cannot, it retires and the host starts a
fresh container.
"""

from __future__ import annotations

import os
import resource
import select
import shutil
import signal
import socket
import sys
import time

from reasoner.sandbox.inside import privileges, wire
from reasoner.sandbox.inside.candidate import set_dumpable
from reasoner.sandbox.inside.harness import oom_kills

WRITABLE = ("/tmp", "/dev/shm", "/dev/mqueue")
PRELOAD = ("array bisect collections copy dataclasses datetime decimal enum fractions functools hashlib heapq "
           "itertools json math operator random re statistics string sys typing unicodedata io threading "
           "atexit").split()
MAX_RESULT = 32 << 20
IGNORED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTSTP",
                   "SIGTTIN", "SIGTTOU", "SIGPIPE", "SIGXFSZ", "SIGXCPU", "SIGVTALRM", "SIGPROF")


def ignore_signals() -> None:
    for name in IGNORED_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)


# ---- zygote ----------------------------------------------------------------------------------

class Zygote:
    """A process forked before any job that forks one harness per job."""

    def __init__(self):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                self.sock.close()
                _zygote_loop(theirs)
            finally:
                os._exit(0)
        theirs.close()

    def spawn(self, fds: list[int]) -> int:
        socket.send_fds(self.sock, [b"spawn"], fds)
        if not select.select([self.sock], [], [], 5.0)[0]:
            raise OSError("zygote did not answer")
        reply = self.sock.recv(64)
        if not reply:
            raise OSError("zygote is gone")
        return int(reply)


def _zygote_loop(sock: socket.socket) -> None:
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # harness processes are reaped by the kernel
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    from reasoner.sandbox.inside import harness, stdio  # noqa: F401 - loaded once, shared by every fork
    while True:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 64, 4)
        if not msg or len(fds) != 4:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                os.closerange(4, 1 << 16)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for name in IGNORED_SIGNALS:
                    if name not in ("SIGPIPE", "SIGXFSZ"):
                        signal.signal(getattr(signal, name), signal.SIG_DFL)
                import random
                random.seed()
                harness.main()
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        sock.send(str(pid).encode())


# ---- one job ---------------------------------------------------------------------------------

def supervise(job: dict, zygote: Zygote, oom_before: int | None) -> dict:
    """Run one job under its wall-clock limit and collect its output and verdict."""
    started = time.monotonic()
    limits = job["limits"]
    deadline = started + float(limits["timeout"])
    cap = int(limits["max_output"])
    pay_r, pay_w = os.pipe()
    res_r, res_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        zygote.spawn([pay_r, out_w, err_w, res_w])
    finally:
        for fd in (pay_r, out_w, err_w, res_w):
            os.close(fd)
    header = {k: job[k] for k in ("mode", "language", "program", "limits")}
    payload = memoryview(wire.pack(header) + wire.pack(job["tests"]))
    os.set_blocking(pay_w, False)
    streams = {out_r: bytearray(), err_r: bytearray()}
    totals = {out_r: 0, err_r: 0}
    result = bytearray()
    open_fds = [res_r, out_r, err_r]
    timed_out = False
    try:
        while res_r in open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            writers = [pay_w] if payload else []
            readable, writable, _ = select.select(open_fds, writers, [], left)
            if writable:
                try:
                    payload = payload[os.write(pay_w, payload[:1 << 16]):]
                except BrokenPipeError:
                    payload = payload[:0]
                if not payload:
                    os.close(pay_w)
                    pay_w = -1
            for fd in readable:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    open_fds.remove(fd)
                elif fd == res_r:
                    result += chunk
                    if len(result) > MAX_RESULT:
                        open_fds.remove(fd)
                else:
                    totals[fd] += len(chunk)
                    room = cap - len(streams[fd])
                    if room > 0:
                        streams[fd] += chunk[:room]
        for fd in (out_r, err_r):  # what is already in the pipes, without waiting for more
            os.set_blocking(fd, False)
            try:
                for _ in range(64):  # bounded: a process left behind may still be writing
                    chunk = os.read(fd, 1 << 16) if fd in open_fds else b""
                    if not chunk:
                        break
                    totals[fd] += len(chunk)
                    streams[fd] += chunk[:max(0, cap - len(streams[fd]))]
            except BlockingIOError:
                pass
    finally:
        for fd in (pay_w, res_r, out_r, err_r):
            if fd >= 0:
                os.close(fd)
    seconds = time.monotonic() - started
    verdict = _verdict(bytes(result), timed_out, limits, oom_before)
    details = dict(verdict.get("details") or {})
    details.setdefault("stdout_bytes", totals[out_r])
    details.setdefault("stderr_bytes", totals[err_r])
    stdout = verdict.get("stdout")
    if not isinstance(stdout, str):
        stdout = streams[out_r].decode("utf-8", "replace")
    return {"status": verdict["status"], "stdout": wire.clean_text(stdout, cap),
            "stderr": streams[err_r].decode("utf-8", "replace"), "seconds": round(seconds, 6),
            "details": wire.clean_details(details)}


def _verdict(data: bytes, timed_out: bool, limits: dict, oom_before: int | None) -> dict:
    if timed_out:
        return {"status": "timeout", "details": {"error": f"ran past {limits['timeout']} s"}}
    try:
        size = int.from_bytes(data[:wire.HEADER], "big")
        verdict = wire.unpack(data[wire.HEADER:wire.HEADER + size]) if len(data) == wire.HEADER + size else None
    except wire.WireError:
        verdict = None
    if type(verdict) is not dict or verdict.get("status") not in (
            "passed", "failed", "timeout", "memory", "runtime_error", "compile_error", "sandbox_error"):
        status = "memory" if oom_kills() not in (None, oom_before) else "runtime_error"
        return {"status": status, "details": {"error": "the harness was killed before it gave a verdict"}}
    return verdict


# ---- between jobs ----------------------------------------------------------------------------

RLIMITS = sorted(getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_"))
IOPRIO_GET = {"x86_64": 252, "aarch64": 31}.get(os.uname().machine)


def trusted_state(pids: list[int]) -> list:
    """What a job could change about the trusted processes from inside: rlimits, nice value,
    CPU affinity and I/O class of each. Compared after every job with the state at start."""
    state = []
    for pid in pids:
        try:
            state.append([pid, [resource.prlimit(pid, r) for r in RLIMITS], os.getpriority(os.PRIO_PROCESS, pid),
                          sorted(os.sched_getaffinity(pid)), _ioprio(pid)])
        except OSError as exc:
            state.append([pid, f"unreadable: {exc}"])
    return state


def _ioprio(pid: int) -> int | None:
    if IOPRIO_GET is None:
        return None
    import ctypes
    return ctypes.CDLL(None, use_errno=True).syscall(IOPRIO_GET, 1, pid)  # IOPRIO_WHO_PROCESS


CPP_PIDS = 24   # processes g++ may start for one compilation (driver, cc1plus, as, collect2, ld ...)


def last_pid() -> int:
    """The last process id handed out in the container (``/proc/loadavg`` is per PID namespace)."""
    with open("/proc/loadavg") as f:
        return int(f.read().split()[4])


def pid_budget(job: dict) -> int:
    """Process ids a job may use without starting processes or threads of its own: harness,
    program's process and the cleaner; per stdio case its process and the harness's feeding thread."""
    if job.get("mode") != "stdio":
        return 3
    cases = len(job.get("tests", {}).get("cases", ()))
    return 3 + 2 * cases + (CPP_PIDS if job.get("language") == "cpp" else 0)


FIRST_JOB_PID = 32
"""Where the PID counter stands when the first job starts: how many ids a container's start
used (runc, the interpreter, the zygote) varies from one container to the next."""


def pad_pids_to(target: int) -> None:
    """Move the PID counter to ``target`` (if it is below): every container's first job then
    finds the same counter, as every later one does (`pad_pids`)."""
    for _ in range(max(0, target - last_pid())):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)


def pad_pids(first: int, budget: int) -> str | None:
    """Leave the PID counter exactly ``budget`` past where the job found it, so that the next
    job cannot read from it how many processes this one started, or which case it stopped at.
    A job that used more retires the container (a fresh one starts its counter afresh)."""
    used = last_pid() - first
    if not 0 <= used <= budget:
        return "a job started processes or threads of its own (the PID counter would carry that to the next job)"
    for _ in range(budget - used):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return None


def others(keep: set[int]) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in keep]


def cleanup(zygote: Zygote) -> str | None:
    """Kill every process but runner and zygote, empty the writable file systems.
    Returns why the container must retire, or None when it is clean."""
    keep = {os.getpid(), zygote.pid}
    for _ in range(200):
        left = others(keep)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _reap(zygote)
        time.sleep(0.0005)
    else:
        return "processes survived the cleanup"
    if _reap(zygote):
        return "the zygote died"
    try:
        os.kill(zygote.pid, signal.SIGCONT)  # in case the job stopped it
    except ProcessLookupError:
        return "the zygote died"
    return _empty_as_program()


def _empty_as_program() -> str | None:
    """Empty the writable file systems from a fork that becomes the program's user: the files
    there are the program's (``/tmp`` is sticky), and no trusted process may own them."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            privileges.become_program()
            for top in WRITABLE:
                try:
                    _empty(top)
                except OSError as exc:
                    os.write(w, f"could not empty {top}: {exc}".encode()[:500])
                    break
        except BaseException as exc:  # noqa: BLE001 - reported to the runner, which retires
            os.write(w, f"cleaner: {type(exc).__name__}: {exc}".encode()[:500])
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        why = f.read(1000).decode("utf-8", "replace")
    os.waitpid(pid, 0)
    return why or None


def _reap(zygote: Zygote) -> bool:
    """Collect exited children of the runner; True if the zygote was among them."""
    lost = False
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return lost
        if pid == 0:
            return lost
        lost = lost or pid == zygote.pid


def _empty(top: str) -> None:
    if not os.path.isdir(top):
        return
    for entry in os.listdir(top):
        path = os.path.join(top, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            def writable_retry(func, p, _exc):
                os.chmod(os.path.dirname(p), 0o700)
                if os.path.isdir(p) and not os.path.islink(p):
                    os.chmod(p, 0o700)
                    shutil.rmtree(p)
                else:
                    func(p)
            os.chmod(path, 0o700)
            shutil.rmtree(path, onerror=writable_retry)
        else:
            os.unlink(path)


# ---- main loop -------------------------------------------------------------------------------

def main() -> None:
    privileges.become_trusted()
    set_dumpable(False)
    ignore_signals()
    os.chdir("/tmp")
    zygote = Zygote()
    trusted = [os.getpid(), zygote.pid]
    snapshot = trusted_state(trusted)
    pad_pids_to(FIRST_JOB_PID)
    wire.write_frame(1, {"ready": {"pid": os.getpid(), "uid": os.getuid(), "python": sys.version.split()[0],
                                   "cpp": shutil.which("g++") is not None}})
    while True:
        job = wire.read_frame(0)
        if job is None:
            return
        first_pid = last_pid()
        try:
            result = supervise(job, zygote, oom_kills())
        except OSError as exc:
            result = {"status": "sandbox_error", "stdout": "", "stderr": "", "seconds": 0.0,
                      "details": {"error": f"runner: {exc}", "infrastructure": True}}
        try:
            retire = cleanup(zygote)
        except OSError as exc:  # e.g. a job lowered this process's open-file limit
            retire = f"the cleanup after a job failed: {exc}"
        if retire is None and trusted_state(trusted) != snapshot:
            retire = "a job changed the limits, priority, CPU affinity or I/O class of a trusted process"
        if retire is None and result["status"] == "sandbox_error" and result["details"].get("infrastructure"):
            retire = "the runner could not judge a job"
        if retire is None:
            retire = pad_pids(first_pid, pid_budget(job))
        result["nonce"] = job.get("nonce")
        if retire:
            result["retire"] = retire
        wire.write_frame(1, result)
        if retire:
            return
