"""One warm runner container and the channel to it: its attached stdin/stdout socket.

The host sends the runner its modules, then one job frame at a time, and reads back one
verdict frame per job (``sandbox/inside/wire.py``). Docker multiplexes the runner's stdout
(our frames) and stderr (its own messages, kept for error reports) on that socket.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import asdict

from reasoner.sandbox import CallTests, FunctionTests, Job, Limits, PytestTests
from reasoner.sandbox import engine
from reasoner.sandbox.inside import bundle, wire

START_TIMEOUT = 60.0   # seconds for a new container to report ready


class ContainerLost(Exception):
    """The container stopped answering: it exited, or broke the protocol."""


class DaemonLost(Exception):
    """The Docker daemon did not answer a question about a container."""


class Container:
    """One running runner container on the daemon at ``base_url`` (None: Docker's environment)."""

    def __init__(self, image: str, job_memory_mb: int, base_url: str | None = None):
        import docker
        self.id = None
        self.api = engine.connect(base_url)
        settings = engine.container_settings(image, job_memory_mb)
        host_config = self.api.create_host_config(**settings.pop("host_config"))
        try:
            self.id = self.api.create_container(host_config=host_config, **settings)["Id"]
        except docker.errors.ImageNotFound:
            self.api.close()
            engine.require_image(engine.connect(base_url), image)
            raise
        except BaseException:
            self.api.close()
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
        self._split(chunk)

    def _split(self, chunk: bytes) -> None:
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
        """False when the container went away while it had no job (end of stream, or a broken
        connection). Reads without waiting; what it reads is kept for the next `read`. (No
        ``MSG_PEEK``: a TLS socket has none, and a TLS record may carry no data at all.)"""
        try:
            self.sock.setblocking(False)
            chunk = self.sock.recv(1 << 16)
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except OSError:
            return False
        finally:
            self.sock.setblocking(True)
        if not chunk:
            return False
        self._split(chunk)
        return True

    def send(self, frame: dict, deadline: float) -> None:
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            self.sock.sendall(wire.pack(frame))
        except TimeoutError:
            raise
        except OSError as exc:
            raise ContainerLost(f"connection lost: {exc}") from None

    def state(self) -> dict | None:
        """Docker's ``State`` of the container; None when it no longer exists (removed from
        outside); DaemonLost when the daemon does not answer."""
        import docker
        try:
            return self.api.inspect_container(self.id)["State"]
        except docker.errors.NotFound:
            return None
        except Exception as exc:  # noqa: BLE001 - refused, reset, timed out, or a daemon error
            raise DaemonLost(engine.short(exc)) from None

    def stop(self) -> None:
        """Kill and remove the container by id (closing the socket alone would leave it running)."""
        if self.id is not None:
            try:
                self.api.remove_container(self.id, force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.abandon()

    def abandon(self) -> None:
        """Close the channel without asking the daemon anything (it may be gone). The runner
        exits when it reads the end of its stdin; the container is removed later by id."""
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
    elif isinstance(tests, CallTests):
        mode, wire_tests = "function", {"kind": "calls", "fn_name": tests.fn_name, "class_name": tests.class_name,
                                        "inputs": [list(a) for a in tests.inputs], "outputs": list(tests.outputs),
                                        "unwrap_outputs": tests.unwrap_outputs}
    elif isinstance(tests, PytestTests):
        mode, wire_tests = "function", {"kind": "pytest", "source": tests.source, "module": tests.module}
    else:
        mode, wire_tests = "stdio", {"cases": [{"input": c.input, "output": c.output} for c in tests.cases]}
    return {"nonce": nonce, "mode": mode, "language": job.language, "program": job.program, "tests": {**wire_tests, "all_tests": bool(job.all_tests)},
            "limits": asdict(limits)}
