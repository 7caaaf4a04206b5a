"""Docker endpoints that tests can take down: a second Docker daemon, and a TCP proxy on
127.0.0.1 in front of a daemon's socket. Both listen on loopback or unix sockets only.

Used by tests/sandbox/test_sandbox_hosts.py and bench/sandbox_hosts_bench.py.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from reasoner.sandbox import SandboxUnavailable, engine


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
    """``tcp://127.0.0.1:PORT`` forwarding to a daemon's unix socket, with TLS when given a
    server context (see `certificates`). One thread per connection relays both ways (a TLS
    connection must not be used by two threads at once).

    `stop` takes the endpoint down like a daemon that died: every connection is closed, new ones
    are refused. `freeze` makes it hang like a network partition: connections stay open and
    connecting works, but nothing gets through. `start` brings it back on the same port."""

    def __init__(self, target: str | None = None, tls: ssl.SSLContext | None = None):
        self.target = (target or engine.endpoint()).removeprefix("unix://")
        self.tls = tls
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
            threading.Thread(target=self._relay, args=(listener, client), daemon=True).start()

    def _relay(self, listener: socket.socket, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX)
        try:
            client.settimeout(5.0)
            if self.tls is not None:
                client = self.tls.wrap_socket(client, server_side=True)  # refuses a client without a certificate
            upstream.connect(self.target)
        except OSError:
            client.close()
            upstream.close()
            return
        with self._lock:
            if self._listener is not listener:  # stopped meanwhile
                client.close()
                upstream.close()
                return
            self._conns += [client, upstream]
        other = {client: upstream, upstream: client}
        try:
            while True:
                ready = [client] if getattr(client, "pending", lambda: 0)() else \
                    select.select([client, upstream], [], [], 1.0)[0]
                for src in ready:
                    try:
                        data = src.recv(1 << 16)
                    except (ssl.SSLWantReadError, TimeoutError):
                        continue
                    if not data:
                        if not self.frozen:  # a partition does not pass the end of a stream on either
                            other[src].shutdown(socket.SHUT_WR)
                        return
                    if not self.frozen:  # a partition drops what it gets
                        other[src].sendall(data)
        except (OSError, ValueError):  # closed by stop()
            pass
        finally:
            if not self.frozen:
                client.close()
                upstream.close()

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
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


def certificates(directory: Path) -> ssl.SSLContext:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with
    ``openssl`` in ``directory`` under the names Docker clients read from ``DOCKER_CERT_PATH``
    (``ca.pem``, ``cert.pem``, ``key.pem``). Returns the server's context: TLS with a client
    certificate from that CA required, as ``dockerd --tlsverify`` does."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test CA")
    for name, subject, extension in (("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1"),
                                     ("client", "/CN=client", "extendedKeyUsage=clientAuth")):
        (directory / f"{name}.ext").write_text(extension + "\n")
        openssl("req", *key, "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", subject)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                "-out", f"{name}-cert.pem", "-days", "1", "-extfile", f"{name}.ext")
    (directory / "client-cert.pem").rename(directory / "cert.pem")
    (directory / "client-key.pem").rename(directory / "key.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server-cert.pem", directory / "server-key.pem")
    context.load_verify_locations(directory / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    return context
