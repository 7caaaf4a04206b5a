"""Run answer comparisons in worker processes with a time and a memory bound.

A `CheckPool` holds ``workers`` processes, started lazily on first use from a ``forkserver``
(``spawn`` where there is none) so that a parent holding threads (torch) is never forked. Each
worker caps its address space with ``RLIMIT_AS`` and answers one job at a time over a pipe. The
parent gives every job a deadline; a worker past it is killed and replaced, and the job's
verdict is ``timeout``. A worker that dies (out of memory, a crash) is replaced the same way.
So a pathological answer costs at most ``timeout`` seconds and never a stuck trainer.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import weakref
from collections import deque
from multiprocessing.connection import wait

log = logging.getLogger(__name__)

Result = tuple[str, dict]  # (reason, details)


def _limit_memory(memory_mb: int) -> None:
    try:
        import resource
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # not on this platform, or already lower
        log.debug("could not set RLIMIT_AS", exc_info=True)


MEMORY: Result = ("timeout", {"bound": "memory"})
READY = ("ready", None, True)
START_FAILED = ("math verifier: a check worker exited while starting, before any check. If this runs from a "
                "script, put the script's code under `if __name__ == \"__main__\":` (each worker process imports "
                "the main script, and unguarded top-level code starts the verifier again there), or use workers=0.")


class WorkerStartError(RuntimeError):
    """The pool's workers cannot start (most often: a script without an ``if __name__ == "__main__":`` guard)."""


def run_check(answer: str, reference: str, rel_tol: float) -> Result:
    """One comparison with every failure mode but memory turned into a result (in and out of workers)."""
    from reasoner.verifiers.math_answer.compare import compare
    try:
        return compare(answer, reference, rel_tol)
    except RecursionError:
        return "unparsable", {"error": "expression too deeply nested"}
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a checker bug on odd input is a verdict, not a crash
        return "verifier_error", {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def _use_every_cpu() -> None:
    """Let this worker run on any CPU. A trainer that pins its OpenMP threads has its main thread
    bound to the first core, and processes it starts inherit that: every worker would share one
    core (measured: half the checks per second on 2 cores)."""
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 1))  # the kernel keeps it within the cpuset
    except (AttributeError, OSError):
        pass


def _worker_main(conn, memory_mb: int, check) -> None:
    """Answer ``(job, result, alive)`` for every job of every chunk; exit after a memory overrun."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    _use_every_cpu()
    import reasoner.verifiers.math_answer.compare  # noqa: F401 - import before the memory cap
    _limit_memory(memory_mb)
    try:
        conn.send(READY)  # start-up done: a worker that dies before this never ran a check
    except (OSError, ValueError):
        return
    while True:
        job = None
        try:
            chunk = conn.recv()
            if chunk is None:
                return
            for job, args in chunk:  # one result per job, as soon as it is known
                conn.send((job, check(*args), True))
            continue
        except (EOFError, OSError, ValueError):
            return
        except MemoryError:  # in the check or reading the chunk: report it if there is room, then
            pass             # start afresh (the heap may be fragmented)
        try:
            conn.send((job, MEMORY, False))
        except (OSError, ValueError, MemoryError):
            pass
        return


def _context():
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["reasoner.verifiers.math_answer.compare"])
        return ctx
    return mp.get_context("spawn")


class _Worker:
    def __init__(self, ctx, memory_mb: int, check):
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, memory_mb, check), daemon=True,
                                name="reasoner-math-check")
        self.proc.start()
        child.close()
        self.ready = False

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                kill = True
        if not kill:
            self.proc.join(1.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(1.0)
        self.conn.close()


def _shutdown(workers: list) -> None:
    for w in workers:
        try:
            w.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    workers.clear()


class CheckPool:
    """``workers`` processes calling ``check(*job)``, each job bounded by ``timeout`` s and ``memory_mb``.

    ``check`` is `run_check` unless given; it must be a module-level function (it is sent to the
    workers by name).
    """

    def __init__(self, workers: int = 2, timeout: float = 3.0, memory_mb: int = 1024, check=run_check):
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.size, self.timeout, self.memory_mb, self.check = workers, timeout, memory_mb, check
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._ctx = None
        self.replaced = 0  # workers killed or lost and replaced (for tests and metrics)
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)

    def _ensure_started(self) -> None:
        if self._ctx is None:
            self._ctx = _context()
        while len(self._workers) < self.size:
            self._workers.append(_Worker(self._ctx, self.memory_mb, self.check))

    def _replace(self, i: int) -> None:
        self._workers[i].stop(kill=True)
        self._workers[i] = _Worker(self._ctx, self.memory_mb, self.check)
        self.replaced += 1

    def run(self, jobs: list[tuple]) -> list[Result]:
        """Results of ``check(*job)`` for every job (``(answer, reference, rel_tol)``), in order.

        Jobs go out in chunks (fewer round trips); the worker answers each job as soon as it is
        done, and the deadline restarts with every answer, so each check keeps its own bound.
        """
        results: list[Result | None] = [None] * len(jobs)
        queue = deque(range(len(jobs)))
        with self._lock:
            self._ensure_started()
            busy: dict[int, deque] = {}        # worker index -> its jobs not yet answered, in order
            deadline: dict[int, float] = {}    # worker index -> deadline of the job it runs now
            retried: set[int] = set()

            def give_up(i: int, result: Result | None) -> None:
                """Worker ``i`` is lost: its current job gets ``result`` (or one retry), the rest go back."""
                pending = busy.pop(i)
                deadline.pop(i, None)
                self._replace(i)
                current = pending.popleft()
                queue.extendleft(reversed(pending))
                if result is None and current not in retried:
                    retried.add(current)
                    queue.appendleft(current)
                else:
                    results[current] = result or ("verifier_error", {"error": "check worker died", "bound": "crash"})

            while queue or busy:
                size = max(1, min(16, -(-len(queue) // (2 * len(self._workers)))))
                for i in range(len(self._workers)):
                    if queue and i not in busy:
                        if not self._workers[i].proc.is_alive():  # killed while idle
                            self._replace(i)
                        chunk = [queue.popleft() for _ in range(min(size, len(queue)))]
                        busy[i], deadline[i] = deque(chunk), time.monotonic() + self.timeout
                        try:
                            self._workers[i].conn.send([(j, jobs[j]) for j in chunk])
                        except (OSError, ValueError):  # the worker died before or while reading
                            words = self._last_words(i, chunk[0])
                            if not self._workers[i].ready:
                                self._fail_start()
                            give_up(i, words)
                if not busy:
                    continue
                left = min(deadline.values()) - time.monotonic()
                conns = {self._workers[i].conn: i for i in busy}
                for conn in wait(list(conns), timeout=max(left, 0.0)):
                    i = conns[conn]
                    try:
                        job, result, alive = conn.recv()
                    except (EOFError, OSError):
                        if not self._workers[i].ready:  # died while starting: every check would die the same way
                            self._fail_start()
                        give_up(i, None)
                        continue
                    if job == "ready":
                        self._workers[i].ready = True
                        continue
                    if job not in (busy[i][0], None):
                        give_up(i, ("verifier_error", {"error": "worker out of step"}))
                        continue
                    if not alive:  # a memory overrun: the worker has exited
                        give_up(i, result)
                        continue
                    results[busy[i].popleft()] = result
                    deadline[i] = time.monotonic() + self.timeout
                    if not busy[i]:
                        del busy[i], deadline[i]
                now = time.monotonic()
                for i in [i for i, d in deadline.items() if d <= now]:
                    give_up(i, ("timeout", {"bound": "time", "limit_s": self.timeout}))
        return results  # type: ignore[return-value]

    def _fail_start(self) -> None:
        """Stop every worker and raise, once, with the fix (instead of a ``verifier_error`` per check)."""
        _shutdown(self._workers)
        raise WorkerStartError(START_FAILED)

    def _last_words(self, i: int, j: int) -> Result | None:
        """The result a worker sent for job ``j`` before it exited (a memory overrun while reading it)."""
        conn = self._workers[i].conn
        try:
            while conn.poll(0.5):
                job, result, _ = conn.recv()
                if job == "ready":
                    self._workers[i].ready = True
                    continue
                return result if job in (j, None) else None
        except (EOFError, OSError, ValueError):
            pass
        return None

    def close(self) -> None:
        with self._lock:
            _shutdown(self._workers)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]


def run_inline(jobs: list[tuple[str, str, float]], timeout: float) -> list[Result]:
    """The same checks in this process: a time bound by ``SIGALRM`` on the main thread, no memory bound."""
    out = []
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    for answer, reference, rel_tol in jobs:
        if not use_alarm:
            try:
                out.append(run_check(answer, reference, rel_tol))
            except MemoryError:
                out.append(MEMORY)
            continue
        # The alarm raises only while armed: one that comes after the check ended (a loaded machine
        # delivers it late) is ignored instead of escaping from the finally clause.
        armed = [True]

        def on_alarm(signum, frame):
            if armed[0]:
                raise _Overrun()

        old = signal.signal(signal.SIGALRM, on_alarm)
        result = None
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout)
                result = run_check(answer, reference, rel_tol)
            finally:
                armed[0] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except MemoryError:
            result = MEMORY
        except _Overrun:
            result = ("timeout", {"bound": "time", "limit_s": timeout})
        finally:
            signal.signal(signal.SIGALRM, old)
        out.append(result)
    return out


class _Overrun(BaseException):
    """Raised by the alarm; a BaseException so the checker's ``except Exception`` cannot swallow it."""


