"""The Docker endpoints ("hosts") a sandbox pool spreads its warm containers over.

A host is a Docker daemon: the local socket, another socket, or a ``tcp://`` daemon on another
machine. They are given as a list, or comma-separated in ``REASONER_SANDBOX_HOSTS``::

    unix:///var/run/docker.sock,tcp://10.0.0.7:2376?workers=16

``?workers=N`` gives that host N warm containers (default: the pool's ``workers``). The same
endpoint may appear twice; the second is named ``URL#2``. A ``tcp://`` endpoint uses TLS when
``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH`` are set (as for the docker CLI).

`check` is what a host must pass to be in rotation (the daemon answers, the image is there),
and also cleans up there; `answers` is the quick question asked when a job's container stops
answering: is it the container, or the whole host? The pool (``sandbox/pool.py``) keeps each
host's state under its lock.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence
from urllib.parse import parse_qs, urlsplit

from reasoner.sandbox import SandboxUnavailable
from reasoner.sandbox import engine

CHECK_TIMEOUT = 10.0   # seconds for each Docker request when a host is (re)checked
PING_TIMEOUT = 5.0     # seconds for a daemon to answer "are you there?" after a container stopped answering
SSH_FIX = ("ssh:// endpoints are not supported: the pool talks to each container over a socket, and docker's "
           "SSH transport gives an SSH channel instead. Forward the remote daemon's socket "
           "(`ssh -NL /tmp/node1.sock:/var/run/docker.sock user@node1`) and use unix:///tmp/node1.sock")


@dataclass(eq=False)
class Host:
    """One Docker endpoint of a pool, and what the pool knows about it."""

    url: str | None
    """``unix://PATH`` or ``tcp://HOST:PORT``; None: Docker's environment (``DOCKER_HOST``, else the local socket)."""
    name: str
    """The endpoint as written, ``#2`` added when it is listed twice; used in logs and verdicts."""
    workers: int
    """Warm containers on this host."""
    up: bool = True
    """In rotation: its containers take jobs. A host that stopped answering is out until `check` passes."""
    reason: str = ""
    """Why the host is out of rotation."""
    epoch: int = 0
    """Times it went out of rotation; a container from an earlier epoch is not used again."""
    executed: int = 0
    """Jobs that got their verdict here."""
    lost: int = 0
    """Jobs in flight here when it stopped answering (each retried elsewhere, or a ``sandbox_error``)."""
    orphans: list[str] = field(default_factory=list)
    """Ids of containers left here when it stopped answering; removed once it answers again."""

    def status(self) -> dict:
        return {"name": self.name, "up": self.up, "reason": self.reason, "workers": self.workers,
                "executed": self.executed, "lost": self.lost}


def parse(spec: str | Sequence[str] | None, workers: int) -> list[Host]:
    """The hosts of ``spec``: a list of endpoints, one comma-separated string, or None for
    ``REASONER_SANDBOX_HOSTS`` (when set) else Docker's own environment. ValueError when an
    endpoint is malformed."""
    if workers < 1:
        raise ValueError("workers must be >= 1")
    where = "hosts"
    if spec is None:
        spec = os.environ.get(engine.HOSTS_ENV, "").strip()
        if not spec:
            return [Host(None, engine.endpoint(None), workers)]
        where = engine.HOSTS_ENV
    entries = [e.strip() for e in spec.split(",")] if isinstance(spec, str) else [str(e).strip() for e in spec]
    entries = [e for e in entries if e]
    if not entries:
        raise ValueError(f"{where}: no Docker endpoint given")
    hosts: list[Host] = []
    seen: dict[str, int] = {}
    for entry in entries:
        try:
            url, count = _endpoint(entry, workers)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        seen[url] = seen.get(url, 0) + 1
        hosts.append(Host(url, url if seen[url] == 1 else f"{url}#{seen[url]}", count))
    return hosts


def _endpoint(entry: str, workers: int) -> tuple[str, int]:
    if entry.startswith("ssh://"):
        raise ValueError(SSH_FIX)
    parts = urlsplit(entry)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = None
    if parts.scheme == "unix" and parts.path and not parts.netloc:
        url = f"unix://{parts.path}"
    elif parts.scheme == "tcp" and parts.hostname and port and parts.path in ("", "/"):
        url = f"tcp://{parts.netloc}"
    else:
        raise ValueError(f"{entry!r} is not a Docker endpoint: write unix:///path/to/docker.sock or "
                         "tcp://HOST:PORT, optionally followed by ?workers=N")
    query = parse_qs(parts.query, keep_blank_values=True)
    if set(query) - {"workers"}:
        raise ValueError(f"{entry!r}: the only setting of an endpoint is ?workers=N")
    if "workers" in query:
        value = query["workers"][-1]
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{entry!r}: workers must be a whole number >= 1")
        workers = int(value)
    return url, workers


def check(host: Host, image: str, timeout: float | None = None) -> None:
    """SandboxUnavailable unless the host can serve: its daemon answers and has the image. Then
    removes what the pool left there (`Host.orphans`) and stale sandbox containers."""
    api = engine.connect(host.url, timeout=timeout or CHECK_TIMEOUT)
    try:
        remote = host.url if (host.url or "").startswith("tcp://") else None
        engine.require_image(api, image, remote)
        remove_orphans(host, api)
        engine.remove_stale(api)
    finally:
        api.close()


def remove_orphans(host: Host, api=None) -> None:
    """Remove the containers the pool left on ``host`` when it stopped answering (best effort)."""
    import docker
    own = api is None
    if own:
        try:
            api = engine.connect(host.url, timeout=CHECK_TIMEOUT)
        except SandboxUnavailable:
            return
    try:
        for cid in list(host.orphans):
            try:
                api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
            except Exception:  # noqa: BLE001 - try again next time
                continue
            host.orphans.remove(cid)
    finally:
        if own:
            api.close()


def answers(host: Host, timeout: float | None = None) -> bool:
    """Whether the host's daemon answers a ping within ``timeout`` seconds (default `PING_TIMEOUT`)."""
    try:
        engine.connect(host.url, timeout=timeout or PING_TIMEOUT).close()
    except SandboxUnavailable:
        return False
    return True
