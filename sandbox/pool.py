"""The warm pool: long-lived hardened containers, one job at a time in each, spread over one or
more Docker hosts; a job goes to whichever container is free.

Why warm containers: here a hardened ``docker run`` costs ~210 ms and a ``docker exec`` ~70 ms,
while a job inside a running container costs a few milliseconds (docs/benchmarks.md). The host
talks to each container's runner over the container's attached stdin/stdout (one socket, no
extra process; ``sandbox/container.py``). Each job carries a random nonce the runner must echo.

Each container has a worker thread that pulls the next job from one shared queue, so faster
hosts take more jobs and a slow job holds up only its own container. A container is replaced
when the job runs past its limit plus a grace period (the wall-clock kill from outside:
``docker rm -f`` by id), when it dies, when it breaks the protocol, or when its runner could not
clean up after a job and retires. The verdict of a job that killed its container is that job's
verdict: it is never retried.

What *is* retried is a job that lost its container for a reason no job can cause: the daemon
stopped answering (the host leaves the rotation), the container was removed from outside, or the
connection to it broke while it lived on. The job goes back to the front of the queue (at most
``retries`` times); a probe thread checks each host out of rotation every ``probe_interval``
seconds until it can serve again. With no host left, jobs end as ``sandbox_error`` with the
reason, never as an exception and never as ``failed``. docs/sandbox.md has the table of cases.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import logging
import secrets
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from reasoner.sandbox import STATUSES, Case, Execution, Job, Limits, SandboxUnavailable, StdioTests, Tests
from reasoner.sandbox import engine, hosts as hostlist
from reasoner.sandbox.container import Container, ContainerLost, DaemonLost, encode_job
from reasoner.sandbox.hosts import Host
from reasoner.sandbox.inside import wire

log = logging.getLogger(__name__)

GRACE = 3.0            # seconds past a job's timeout before the host kills its container
RETRIES = 2            # times a job whose host went away under it is sent to another host
PROBE_INTERVAL = 5.0   # seconds between checks of a host that is out of rotation
JOBS_PER_CONTAINER = 2000  # a container is replaced after this many jobs, even when nothing went wrong
_OPEN: "weakref.WeakSet[Sandbox]" = weakref.WeakSet()


class Lost(Exception):
    """The job could not be judged for a reason that is not the job's: its host went away
    (``host_down``), or its container was removed from outside. ``sent``: the job had reached
    the container (only those losses count against the job's retries)."""

    def __init__(self, reason: str, host_down: bool = True, sent: bool = True):
        super().__init__(reason)
        self.reason, self.host_down, self.sent = reason, host_down, sent


@dataclass(eq=False)
class _Ticket:
    job: Job
    future: Future
    started: bool = False
    attempts: int = 0
    lost: list[str] = field(default_factory=list)


def sandbox_error(message: str, **details) -> Execution:
    return Execution("sandbox_error", details={"error": message, **details})


class Sandbox:
    """Runs programs under tests in a pool of warm, hardened containers on one or more Docker hosts.

    >>> with Sandbox(workers=2) as sandbox:                      # doctest: +SKIP
    ...     sandbox.run("def f(x):\\n    return 2 * x\\n", FunctionTests("assert f(2) == 4"))
    Execution(status='passed', ...)
    >>> Sandbox(workers=4, hosts=["unix:///var/run/docker.sock", "tcp://node2:2376?workers=16"])  # doctest: +SKIP

    ``workers`` is the number of warm containers on each host (an endpoint's ``?workers=N``
    overrides it); ``hosts`` the Docker endpoints (``sandbox/hosts.py``; default:
    ``REASONER_SANDBOX_HOSTS``, else Docker's environment). Containers start on first use (or
    `start`); `close` removes them. Problems with Docker itself come back as ``sandbox_error``
    executions from `run`, and as `SandboxUnavailable` from `start` when no host can serve.
    """

    def __init__(self, workers: int = 2, limits: Limits | None = None, image: str = engine.IMAGE,
                 hosts: str | Sequence[str] | None = None, retries: int = RETRIES,
                 probe_interval: float = PROBE_INTERVAL, jobs_per_container: int = JOBS_PER_CONTAINER):
        self.hosts: list[Host] = hostlist.parse(hosts, workers)
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if probe_interval <= 0:
            raise ValueError("probe_interval must be > 0 seconds")
        # the host of each container slot, hosts interleaved
        self._slots: list[Host] = [h for i in range(max(h.workers for h in self.hosts))
                                   for h in self.hosts if i < h.workers]
        self.workers = len(self._slots)
        """Warm containers over all hosts."""
        self.limits = limits or Limits()
        self.image = image
        self.retries = retries
        self.probe_interval = probe_interval
        self._containers: list[Container | None] = [None] * self.workers
        self._epochs = [0] * self.workers   # the host's epoch when the slot's container started
        self._jobs = [0] * self.workers     # jobs the slot's container has run
        if jobs_per_container < 1:
            raise ValueError("jobs_per_container must be >= 1")
        self.jobs_per_container = jobs_per_container
        """Jobs after which a container is replaced by a fresh one, whatever happened in it."""
        self._lock = threading.Lock()       # start and close
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._mutex = threading.Lock()      # the queue and every host's state
        self._has_work = threading.Condition(self._mutex)   # waited on by containers of hosts in rotation
        self._revived = threading.Condition(self._mutex)    # ... and of hosts out of rotation
        self._pending: "collections.deque[_Ticket]" = collections.deque()
        self._closing = False
        self._stop_probe = threading.Event()
        self._start_failed: tuple[float, str] | None = None   # when submit's start last failed, and why
        self.replaced = 0
        """Containers replaced so far (killed from outside, died, retired, or from before an outage)."""
        self.retried = 0
        """Jobs sent again after losing their container for a reason not their own."""

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> "Sandbox":
        """Check every host (daemon, image), remove stale containers there, start every container.
        A host that cannot serve stays out of rotation until a probe finds it ready. Raises
        SandboxUnavailable with the fix when no host can serve."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this Sandbox is closed")
            if self._threads:
                return self
            for host, exc in _each(self.hosts, lambda host: hostlist.check(host, self.image)):
                host.up, host.reason = exc is None, "" if exc is None else str(exc)
            if not any(h.up for h in self.hosts):
                raise self._unavailable()
            slots = [i for i, host in enumerate(self._slots) if host.up]
            errors = dict(_each(slots, self._boot))
            for host in self.hosts:
                mine = [i for i in slots if self._slots[i] is host]
                if mine and all(errors[i] is not None for i in mine):
                    host.up, host.reason = False, str(errors[mine[0]])
            if not any(h.up for h in self.hosts):
                raise self._unavailable("no sandbox container could start")
            for host in self.hosts:
                if not host.up:
                    log.warning("sandbox host %s is out of rotation: %s", host.name, host.reason)
            self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True, name=f"sandbox-{i}")
                             for i in range(self.workers)]
            for t in self._threads:
                t.start()
            threading.Thread(target=self._probe, daemon=True, name="sandbox-probe").start()
            _OPEN.add(self)
        return self

    def _unavailable(self, what: str = "") -> SandboxUnavailable:
        if len(self.hosts) == 1:
            reason = self.hosts[0].reason
            return SandboxUnavailable(f"{what}: {reason}" if what else reason)
        reasons = "; ".join(f"{h.name}: {h.reason}" for h in self.hosts)
        return SandboxUnavailable(f"{what or 'no Docker host of the sandbox can serve'}: {reasons}")

    def close(self) -> None:
        """Finish the jobs already queued, stop the workers and remove their containers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads, self._threads = self._threads, []
        with self._mutex:
            self._closing = True
            self._has_work.notify_all()
            self._revived.notify_all()
        self._stop_probe.set()  # the probe thread ends after its check in progress, if any; not waited for
        for t in threads:
            t.join(timeout=30)
        with self._mutex:  # jobs submitted while closing, or left by a host that went away
            left = list(self._pending)
            self._pending.clear()
        for ticket in left:
            self._resolve(ticket, sandbox_error("the Sandbox was closed"))
        def stop(slot: int) -> None:
            container, self._containers[slot] = self._containers[slot], None
            if container is None:
                return
            if self._slots[slot].up:
                container.stop()
            else:  # its daemon is gone: asking it would only wait
                container.abandon()
        _each(list(range(self.workers)), stop)
        for host in self.hosts:  # containers left by an outage on a host that came back
            if host.up and host.orphans:
                hostlist.remove_orphans(host)
        _OPEN.discard(self)

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def container_ids(self) -> list[str]:
        return [c.id for c in self._containers if c is not None]

    def runner_info(self) -> dict:
        """What a runner reported when it started: pid, uid, Python version, whether g++ exists."""
        self.start()
        return next((c.info for c in self._containers if c is not None), {})

    def host_status(self) -> list[dict]:
        """Per host: name, whether it is in rotation (and why not), workers, jobs executed and lost."""
        with self._mutex:
            return [h.status() for h in self.hosts]

    # ---- running ----------------------------------------------------------------------------

    def submit(self, job: Job) -> "Future[Execution]":
        """Queue a job; the future's result is its Execution (never an exception)."""
        future: Future = Future()
        if not self._threads:
            failed = self._start_failed
            if failed is not None and time.monotonic() < failed[0] + self.probe_interval:
                future.set_result(sandbox_error(failed[1]))  # not every job waits for the same hosts again
                return future
            try:
                self.start()
            except (SandboxUnavailable, RuntimeError) as exc:
                self._start_failed = (time.monotonic(), str(exc))
                future.set_result(sandbox_error(str(exc)))
                return future
        with self._mutex:
            if self._closing:
                error = "the Sandbox was closed"
            elif not any(h.up for h in self.hosts):
                error = self._no_host_left()
            else:
                self._pending.append(_Ticket(job, future))
                self._has_work.notify()
                return future
        future.set_result(sandbox_error(error))
        return future

    def run(self, program: str, tests: Tests | None = None, limits: Limits | None = None,
            language: str = "python") -> Execution:
        """Run ``program`` under ``tests`` (default: run it once, pass on a clean exit)."""
        tests = tests if tests is not None else StdioTests((Case(),))
        return self.submit(Job(program, tests, limits, language)).result()

    def run_many(self, jobs: Iterable[Job]) -> list[Execution]:
        """Run jobs concurrently on the pool; results in the order given."""
        futures = [self.submit(job) for job in jobs]
        return [f.result() for f in futures]

    # ---- dispatch ---------------------------------------------------------------------------

    def _take(self, host: Host) -> _Ticket | None:
        """The next job for a container of ``host``; None when the pool closes."""
        with self._mutex:
            while True:
                if host.up and self._pending:
                    ticket = self._pending.popleft()
                    if ticket.started or ticket.future.set_running_or_notify_cancel():
                        ticket.started = True
                        return ticket
                elif self._closing:
                    return None
                elif host.up:
                    self._has_work.wait()
                else:
                    self._revived.wait()

    def _work(self, slot: int) -> None:
        host = self._slots[slot]
        while True:
            ticket = self._take(host)
            if ticket is None:
                return
            try:
                execution = self._execute(slot, ticket.job)
            except Lost as lost:
                self._lost(host, ticket, lost)
                continue
            except Exception as exc:  # noqa: BLE001 - a verdict, never an exception
                log.debug("sandbox worker %d failed", slot, exc_info=True)
                execution = sandbox_error(f"{type(exc).__name__}: {exc}")
            with self._mutex:
                host.executed += 1
            self._resolve(ticket, execution)

    def _resolve(self, ticket: _Ticket, execution: Execution) -> None:
        if ticket.lost:
            execution = dataclasses.replace(execution, details={**execution.details, "lost_hosts": ticket.lost})
        if ticket.started or ticket.future.set_running_or_notify_cancel():
            ticket.future.set_result(execution)

    def _lost(self, host: Host, ticket: _Ticket, lost: Lost) -> None:
        """A job could not be judged on ``host`` for a reason not its own: retry it elsewhere,
        or end it (and, with no host left, every queued job) as a ``sandbox_error``."""
        failed: list[tuple[_Ticket, Execution]] = []
        with self._mutex:
            if lost.host_down and host.up:
                host.up, host.reason = False, lost.reason
                host.epoch += 1
                self._has_work.notify_all()  # its other containers move to waiting for the probe
                log.warning("sandbox host %s is out of rotation: %s", host.name, lost.reason)
            if lost.sent:
                ticket.attempts += 1
                ticket.lost.append(f"{host.name}: {lost.reason}")
                host.lost += 1
            if not any(h.up for h in self.hosts):
                error = self._no_host_left()
                failed = [(t, sandbox_error(error)) for t in [ticket, *self._pending]]
                self._pending.clear()
            elif ticket.attempts > self.retries:
                failed = [(ticket, sandbox_error(f"the job's Docker host went away under it {ticket.attempts} "
                                                 f"times; not retried again (retries={self.retries})"))]
            else:
                self.retried += lost.sent
                self._pending.appendleft(ticket)
                self._has_work.notify()
        for t, execution in failed:
            self._resolve(t, execution)

    def _no_host_left(self) -> str:
        """Why no host can take a job (called under the mutex)."""
        reasons = "; ".join(f"{h.name}: {h.reason}" for h in self.hosts)
        return f"no Docker host of the sandbox is reachable ({reasons}); they are probed every " \
               f"{self.probe_interval:g} s and come back when they answer"

    def _probe(self) -> None:
        """Bring hosts that went out of rotation back once they can serve again."""
        while not self._stop_probe.wait(self.probe_interval):
            out = [h for h in self.hosts if not h.up]
            for host, exc in _each(out, lambda host: hostlist.check(host, self.image)):
                if exc is not None:  # still out, for the reason it went out
                    log.debug("sandbox host %s is still out: %s", host.name, exc)
                    continue
                with self._mutex:
                    host.up, host.reason = True, ""
                    self._revived.notify_all()
                log.warning("sandbox host %s is back in rotation", host.name)

    # ---- one job in one container -----------------------------------------------------------

    def _execute(self, slot: int, job: Job) -> Execution:
        """The job's verdict from the slot's container; raises Lost when the job could not be
        judged for a reason that is not its own."""
        limits = job.limits or self.limits
        if limits.memory_mb > self.limits.memory_mb:
            return sandbox_error(f"the job asks for {limits.memory_mb} MiB but this pool's containers were "
                                 f"made for {self.limits.memory_mb} MiB; create the Sandbox with a larger limit")
        host = self._slots[slot]
        container = self._containers[slot]
        if container is not None and self._epochs[slot] != host.epoch:
            self._replace(slot)  # from before the host went away: not used again
            container = None
        elif container is not None and not container.idle_and_alive():
            if not hostlist.answers(host):  # it died between jobs: not this job's doing
                self._abandon(slot)
                raise Lost("a container died while idle and the daemon does not answer", sent=False)
            self._replace(slot)
            container = None
        if container is None:
            error = self._boot(slot)
            if error is not None:
                raise Lost(f"could not start a sandbox container: {error}", sent=False)
            container = self._containers[slot]
        nonce = secrets.token_hex(16)
        deadline = time.monotonic() + limits.timeout + GRACE
        try:
            container.send(encode_job(job, limits, nonce), deadline)
            reply = container.read(deadline)
        except TimeoutError:
            if not hostlist.answers(host):
                self._abandon(slot)
                raise Lost(f"no verdict {GRACE} s after the {limits.timeout} s limit and the daemon does not answer")
            self._replace(slot)
            return Execution("timeout", seconds=limits.timeout + GRACE,
                             details={"error": f"no verdict {GRACE} s after the {limits.timeout} s limit: "
                                               "container killed from outside"})
        except (ContainerLost, wire.WireError) as exc:
            try:
                state = container.state()
            except DaemonLost as err:
                self._abandon(slot)
                raise Lost(f"lost the container ({exc}) and the daemon does not answer ({err})") from None
            self._replace(slot)
            if state is None:  # no job can reach Docker to remove its own container
                raise Lost(f"the container was removed from outside during the job ({exc})", host_down=False)
            if state.get("Running") or (state.get("ExitCode") == 0 and not state.get("OOMKilled")):
                # the container lives on, or its runner saw its stdin close and exited cleanly: the
                # channel to it broke (no job can reach the runner's stdin or make it exit)
                raise Lost(f"the connection to the container broke during the job ({exc})", host_down=False)
            status = "memory" if state.get("OOMKilled") else "runtime_error"
            return Execution(status, details={"error": f"the container died during the job: {exc}"})
        if type(reply) is not dict or reply.get("nonce") != nonce or reply.get("status") not in STATUSES:
            self._replace(slot)
            return sandbox_error("protocol violation from the container's runner")
        self._jobs[slot] += 1
        if reply.get("retire") or self._jobs[slot] >= self.jobs_per_container:
            log.debug("sandbox container retires: %s", reply.get("retire") or f"{self._jobs[slot]} jobs")
            self._replace(slot)
        details = reply.get("details")
        if reply["status"] == "sandbox_error" and type(details) is dict and details.get("infrastructure"):
            # the runner or the harness failed, not the program: judged again in a fresh container
            self._replace(slot)
            raise Lost(f"the container could not judge the job: {wire.clean_text(details.get('error'), 500)}",
                       host_down=False)
        cap = max(limits.max_output, 1)
        return Execution(reply["status"], wire.clean_text(reply.get("stdout", ""), cap),
                         wire.clean_text(reply.get("stderr", ""), cap), float(reply.get("seconds", 0.0)),
                         wire.clean_details(reply.get("details") or {}))

    def _boot(self, slot: int) -> BaseException | None:
        """Start the slot's container on its host; the error when it could not."""
        host = self._slots[slot]
        epoch = host.epoch
        try:
            container = Container(self.image, self.limits.memory_mb, host.url)
        except Exception as exc:  # noqa: BLE001 - the daemon's trouble, reported by the caller
            return exc
        self._containers[slot], self._epochs[slot] = container, epoch
        self._jobs[slot] = 0
        return None

    def _replace(self, slot: int) -> None:
        """Remove the slot's container (a fresh one starts before its next job)."""
        container, self._containers[slot] = self._containers[slot], None
        if container is not None:
            container.stop()
            self.replaced += 1

    def _abandon(self, slot: int) -> None:
        """Drop the slot's container without asking its daemon, which is gone; it is removed
        when the host answers again."""
        container, self._containers[slot] = self._containers[slot], None
        if container is not None:
            container.abandon()
            self._slots[slot].orphans.append(container.id)


def _each(items: list, fn) -> list[tuple]:
    """``(item, exception or None)`` for ``fn(item)`` run on every item at once, in threads."""
    results: dict[int, BaseException | None] = {}

    def one(k: int) -> None:
        try:
            out = fn(items[k])
            results[k] = out if isinstance(out, BaseException) else None
        except BaseException as exc:  # noqa: BLE001 - returned to the caller
            results[k] = exc
    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [(items[k], results[k]) for k in range(len(items))]


@atexit.register
def _close_all() -> None:
    for sandbox in list(_OPEN):
        sandbox.close()
