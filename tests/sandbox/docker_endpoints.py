"""Docker endpoints that tests can take down: a second Docker daemon, and a TCP proxy on
127.0.0.1 in front of a daemon's socket. Both listen on loopback or unix sockets only.

Used by tests/sandbox/test_sandbox_hosts.py and bench/sandbox_hosts_bench.py.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from sandbox import SandboxUnavailable, engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class SecondDaemon:
    """A second ``dockerd`` beside the machine's own: its own socket, data root, exec root (and
    so its own containerd) and pid file, in a network namespace of its own (``unshare --net``):
    with ``--bridge none`` a daemon deletes the host's ``docker0``, which belongs to the first
    daemon, and its own namespace keeps that and every other network change away from the host.
    Reach it over TCP with a `LoopbackProxy` in front of its socket. Needs root.

    `kill` is a crash (SIGKILL), `stop` an orderly shutdown (SIGTERM); `start` again reuses
    the data root, so the image stays loaded. It gets SIGTERM if this process dies."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root or tempfile.mkdtemp(prefix="reasoner-d2-", dir="/tmp"))
        self.unix = f"unix://{self.root / 'docker.sock'}"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def problem() -> str | None:
        """Why a second daemon cannot run here, or None."""
        if shutil.which("dockerd") is None or shutil.which("unshare") is None:
            return "dockerd or unshare is not installed (apt-get install docker.io util-linux)"
        if os.geteuid() != 0:
            return "a second dockerd needs root"
        return None

    def start(self, timeout: float = 60.0) -> "SecondDaemon":
        """Start it and wait until it answers. A daemon restarted after a crash sometimes gives up
        waiting for its containerd while that reattaches to the crashed one's shims; the next
        start goes through, so there is a second try."""
        for attempt in (1, 2):
            (self.root / "docker.pid").unlink(missing_ok=True)  # left by a killed daemon
            argv = ["unshare", "--net", "--", "dockerd", "--host", self.unix,
                    "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                    "--pidfile", str(self.root / "docker.pid"), "--bridge", "none", "--iptables=false",
                    "--shutdown-timeout", "2", "--log-level", "warn"]
            with open(self.root / "dockerd.log", "ab") as log:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True, preexec_fn=_die_with_parent)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    engine.connect(self.unix, timeout=2).close()
                    return self
                except SandboxUnavailable:
                    time.sleep(0.1)
            self.kill()
        raise RuntimeError(f"the second dockerd did not start: {self.log_tail()}")

    def load(self, image: str = engine.IMAGE) -> None:
        """Copy ``image`` from the default daemon (``docker save | docker load``)."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", self.unix, "load", "-q"], stdin=save.stdout, capture_output=True,
                              timeout=300)
        save.stdout.close()
        if save.wait() != 0 or load.returncode != 0:
            raise RuntimeError(f"could not copy {image} to the second daemon: {load.stderr.decode()[-500:]}")

    def kill(self) -> None:
        """A crash: SIGKILL, nothing cleaned up (its containers' processes outlive it until it restarts)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        """An orderly shutdown: SIGTERM; the daemon kills its containers and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def remove(self) -> None:
        """Stop it, undo the mounts a killed daemon leaves, and delete its directory (in the
        background: the image's files take seconds to delete)."""
        self.stop()
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        inside = [p for p in points if p == str(self.root) or p.startswith(f"{self.root}/")]
        for point in sorted(inside, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True)
        subprocess.Popen(["rm", "-rf", "--one-file-system", str(self.root)], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def log_tail(self) -> str:
        try:
            return (self.root / "dockerd.log").read_text(errors="replace")[-800:]
        except OSError:
            return ""


class LoopbackProxy:
    """``tcp://127.0.0.1:PORT`` forwarding to a daemon's unix socket, in threads.

    `stop` takes the endpoint down like a daemon that died: every connection is closed, new ones
    are refused. `freeze` makes it hang like a network partition: connections stay open and
    connecting works, but nothing gets through. `start` brings it back on the same port."""

    def __init__(self, target: str | None = None):
        self.target = (target or engine.endpoint()).removeprefix("unix://")
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.frozen = False

    def start(self) -> "LoopbackProxy":
        self.frozen = False
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if not self.frozen:  # a partition drops what it gets
                    dst.sendall(data)
        except OSError:
            pass
        if not self.frozen:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def freeze(self) -> None:
        self.frozen = True

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept(); close() alone would not
            except OSError:
                pass
            listener.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
