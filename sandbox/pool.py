"""The warm pool: N long-lived hardened containers, one job at a time in each, jobs dispatched
to whichever container is free.

Why warm containers: here a hardened ``docker run`` costs ~210 ms and a ``docker exec`` ~70 ms,
while a job inside a running container costs a few milliseconds (docs/benchmarks.md). The host
talks to each container's runner over the container's attached stdin/stdout (one socket, no
extra process). Each job carries a random nonce the runner must echo.

A container is replaced when the job runs past its limit plus a grace period (the wall-clock
kill from outside: ``docker rm -f`` by id), when it dies, when it breaks the protocol, or when
its runner could not clean up after a job and retires. A job is never retried: the verdict of
a job that killed its container is that job's verdict.
"""

from __future__ import annotations

import atexit
import logging
import queue
import secrets
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import asdict
from typing import Iterable

from sandbox import STATUSES, Case, Execution, FunctionTests, Job, Limits, SandboxUnavailable, StdioTests, Tests
from sandbox import engine
from sandbox.inside import bundle, wire

log = logging.getLogger(__name__)

GRACE = 3.0            # seconds past a job's timeout before the host kills its container
START_TIMEOUT = 60.0   # seconds for a new container to report ready
_OPEN: "weakref.WeakSet[Sandbox]" = weakref.WeakSet()


class ContainerLost(Exception):
    """The container stopped answering: it exited, or broke the protocol."""


class Container:
    """One running runner container and the socket attached to its stdin/stdout."""

    def __init__(self, image: str, job_memory_mb: int):
        import docker
        self.id = None
        self.api = engine.connect()
        settings = engine.container_settings(image, job_memory_mb)
        host_config = self.api.create_host_config(**settings.pop("host_config"))
        try:
            self.id = self.api.create_container(host_config=host_config, **settings)["Id"]
        except docker.errors.ImageNotFound:
            self.api.close()
            engine.require_image(engine.connect(), image)
            raise
        self._out = bytearray()   # the runner's stdout stream (our frames)
        self._raw = bytearray()   # Docker's multiplexed stream, not yet split
        self.log = bytearray()    # the runner's own stderr, kept for error messages
        try:
            attached = self.api.attach_socket(self.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            self.sock = getattr(attached, "_sock", attached)
            self.api.start(self.id)
            deadline = time.monotonic() + START_TIMEOUT
            self.sock.settimeout(START_TIMEOUT)
            self.sock.sendall(wire.pack(bundle()))
            hello = self.read(deadline)
            if type(hello) is not dict or "ready" not in hello:
                raise ContainerLost(f"unexpected first message {str(hello)[:200]}")
            self.info = hello["ready"]
        except BaseException:
            self.stop()
            raise

    def read(self, deadline: float):
        """The next frame from the runner."""
        while True:
            if len(self._out) >= wire.HEADER:
                size = int.from_bytes(self._out[:wire.HEADER], "big")
                if size > wire.MAX_FRAME:
                    raise ContainerLost("oversized frame from the runner")
                if len(self._out) >= wire.HEADER + size:
                    data = bytes(self._out[wire.HEADER:wire.HEADER + size])
                    del self._out[:wire.HEADER + size]
                    return wire.unpack(data)
            self._fill(deadline)

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except TimeoutError:
            raise
        except OSError as exc:
            raise ContainerLost(f"connection lost: {exc}") from None
        if not chunk:
            raise ContainerLost("the container closed its output" + self._log_tail())
        self._raw += chunk
        while len(self._raw) >= 8:  # Docker frames: stream id, 3 zero bytes, 4-byte size, payload
            size = int.from_bytes(self._raw[4:8], "big")
            if len(self._raw) < 8 + size:
                break
            stream, payload = self._raw[0], self._raw[8:8 + size]
            del self._raw[:8 + size]
            if stream == 1:
                self._out += payload
            else:
                self.log = (self.log + payload)[-8192:]

    def _log_tail(self) -> str:
        text = self.log.decode("utf-8", "replace").strip()
        return f": {text[-500:]}" if text else ""

    def idle_and_alive(self) -> bool:
        """False when the container went away while it had no job (nothing to read, no EOF)."""
        import socket
        try:
            self.sock.setblocking(False)
            return self.sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            self.sock.setblocking(True)

    def send(self, frame: dict, deadline: float) -> None:
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            self.sock.sendall(wire.pack(frame))
        except TimeoutError:
            raise
        except OSError as exc:
            raise ContainerLost(f"connection lost: {exc}") from None

    def state(self) -> dict:
        try:
            return self.api.inspect_container(self.id)["State"]
        except Exception:  # noqa: BLE001
            return {}

    def stop(self) -> None:
        """Kill and remove the container by id (closing the socket alone would leave it running)."""
        if self.id is not None:
            try:
                self.api.remove_container(self.id, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        sock = getattr(self, "sock", None)
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self.api.close()


def encode_job(job: Job, limits: Limits, nonce: str) -> dict:
    tests = job.tests
    if isinstance(tests, FunctionTests):
        mode, wire_tests = "function", {"source": tests.source, "entry_point": tests.entry_point}
    else:
        mode, wire_tests = "stdio", {"cases": [{"input": c.input, "output": c.output} for c in tests.cases]}
    return {"nonce": nonce, "mode": mode, "language": job.language, "program": job.program, "tests": wire_tests,
            "limits": asdict(limits)}


def sandbox_error(message: str, **details) -> Execution:
    return Execution("sandbox_error", details={"error": message, **details})


class Sandbox:
    """Runs programs under tests in a pool of warm, hardened containers.

    >>> with Sandbox(workers=2) as sandbox:                      # doctest: +SKIP
    ...     sandbox.run("def f(x):\\n    return 2 * x\\n", FunctionTests("assert f(2) == 4"))
    Execution(status='passed', ...)

    Containers start on first use (or `start`); `close` removes them. Problems with Docker
    itself come back as ``sandbox_error`` executions from `run`, and as `SandboxUnavailable`
    from `start`.
    """

    def __init__(self, workers: int = 2, limits: Limits | None = None, image: str = engine.IMAGE):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.limits = limits or Limits()
        self.image = image
        self._queue: "queue.Queue[tuple[Job, Future] | None]" = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._containers: list[Container | None] = [None] * workers
        self._lock = threading.Lock()
        self._closed = False
        self.replaced = 0
        """Containers replaced so far (killed from outside, died, or retired)."""

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> "Sandbox":
        """Check Docker and the image, remove stale containers, start every worker's container.
        Raises SandboxUnavailable with the fix when Docker or the image is missing."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this Sandbox is closed")
            if self._threads:
                return self
            api = engine.connect()
            try:
                engine.require_image(api, self.image)
                engine.remove_stale(api)
            finally:
                api.close()
            errors: list[BaseException] = []

            def boot(slot: int) -> None:
                try:
                    self._containers[slot] = Container(self.image, self.limits.memory_mb)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
            boots = [threading.Thread(target=boot, args=(i,)) for i in range(self.workers)]
            for t in boots:
                t.start()
            for t in boots:
                t.join()
            if errors and all(c is None for c in self._containers):
                raise SandboxUnavailable(f"no sandbox container could start: {errors[0]}")
            self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True, name=f"sandbox-{i}")
                             for i in range(self.workers)]
            for t in self._threads:
                t.start()
            _OPEN.add(self)
        return self

    def close(self) -> None:
        """Stop the workers and remove their containers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for t in threads:
            t.join(timeout=30)
        while True:  # jobs submitted while closing
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_result(sandbox_error("the Sandbox was closed"))
        for slot, container in enumerate(self._containers):
            if container is not None:
                container.stop()
                self._containers[slot] = None
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

    # ---- running ----------------------------------------------------------------------------

    def submit(self, job: Job) -> "Future[Execution]":
        """Queue a job; the future's result is its Execution (never an exception)."""
        future: Future = Future()
        if not self._threads:
            try:
                self.start()
            except (SandboxUnavailable, RuntimeError) as exc:
                future.set_result(sandbox_error(str(exc)))
                return future
        self._queue.put((job, future))
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

    def _work(self, slot: int) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                execution = self._execute(slot, job)
            except Exception as exc:  # noqa: BLE001 - a verdict, never an exception
                log.debug("sandbox worker %d failed", slot, exc_info=True)
                execution = sandbox_error(f"{type(exc).__name__}: {exc}")
            future.set_result(execution)

    def _execute(self, slot: int, job: Job) -> Execution:
        limits = job.limits or self.limits
        if limits.memory_mb > self.limits.memory_mb:
            return sandbox_error(f"the job asks for {limits.memory_mb} MiB but this pool's containers were "
                                 f"made for {self.limits.memory_mb} MiB; create the Sandbox with a larger limit")
        container = self._containers[slot]
        if container is not None and not container.idle_and_alive():
            self._replace(slot)  # it died between jobs: not this job's doing
            container = None
        if container is None:
            try:
                container = self._containers[slot] = Container(self.image, self.limits.memory_mb)
            except Exception as exc:  # noqa: BLE001
                return sandbox_error(f"could not start a sandbox container: {exc}")
        nonce = secrets.token_hex(16)
        deadline = time.monotonic() + limits.timeout + GRACE
        try:
            container.send(encode_job(job, limits, nonce), deadline)
            reply = container.read(deadline)
        except TimeoutError:
            self._replace(slot)
            return Execution("timeout", seconds=limits.timeout + GRACE,
                             details={"error": f"no verdict {GRACE} s after the {limits.timeout} s limit: "
                                               "container killed from outside"})
        except (ContainerLost, wire.WireError) as exc:
            state = container.state()
            self._replace(slot)
            if not state:
                return sandbox_error(f"lost the sandbox container: {exc}")
            status = "memory" if state.get("OOMKilled") else "runtime_error"
            return Execution(status, details={"error": f"the container died during the job: {exc}"})
        if type(reply) is not dict or reply.get("nonce") != nonce or reply.get("status") not in STATUSES:
            self._replace(slot)
            return sandbox_error("protocol violation from the container's runner")
        if reply.get("retire"):
            log.debug("sandbox container retires: %s", reply["retire"])
            self._replace(slot)
        return Execution(reply["status"], str(reply.get("stdout", "")), str(reply.get("stderr", "")),
                         float(reply.get("seconds", 0.0)), dict(reply.get("details") or {}))

    def _replace(self, slot: int) -> None:
        container, self._containers[slot] = self._containers[slot], None
        if container is not None:
            container.stop()
            self.replaced += 1


@atexit.register
def _close_all() -> None:
    for sandbox in list(_OPEN):
        sandbox.close()
