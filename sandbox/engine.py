"""Docker: reaching the daemon, the hardened container settings, and finding our containers.

Every setting in `container_settings` is justified in docs/sandbox.md, each with the attack
test that shows it holds.
"""

from __future__ import annotations

import functools
import os
import socket
from typing import Any

from reasoner.sandbox import SandboxUnavailable, seccomp
from reasoner.sandbox.inside import BOOTSTRAP

IMAGE = "reasoner-sandbox:1"
"""The runner image (`reasoner sandbox build`); the tag changes when the recipe does."""
LABEL = "reasoner.sandbox"
OWNER = "reasoner.sandbox.owner"
USER = "0:0"             # the runner starts as root with CAPS only and switches at once (inside/privileges.py)
CAPS = ["SETUID", "SETGID", "KILL"]
TMPFS_MB = 64            # /tmp, the only writable directory (also counted in the memory limit)
TMPFS_FILES = 8192       # files and directories in /tmp (bounds the cleanup after a job)
SHM_MB = 16              # /dev/shm
HEADROOM_MB = 256        # runner, zygote, harness and g++ on top of a job's own memory
PIDS = 64                # processes and threads in one container
CPUS = 1.0               # CPU quota of one container
OPEN_FILES = 256         # RLIMIT_NOFILE of the runner (a job gets fewer, see inside/candidate.py)
PATH = "/usr/local/bin:/usr/bin:/bin"

HOSTS_ENV = "REASONER_SANDBOX_HOSTS"
"""Comma-separated Docker endpoints of the pool when the caller names none (docs/sandbox.md)."""
LOCAL = "unix:///var/run/docker.sock"
"""The local daemon's socket: the endpoint when neither the caller nor DOCKER_HOST names one."""
DAEMON_FIX = ("start the Docker engine (`sudo dockerd &`, or `sudo systemctl start docker`; install it with "
              "`sudo apt-get install docker.io`), or point DOCKER_HOST at a running one; "
              "`reasoner sandbox check` tests the setup")


def connect(base_url: str | None = None, timeout: float = 30.0):
    """A low-level Docker client for the daemon at ``base_url`` (``unix://PATH`` or ``tcp://HOST:PORT``),
    or SandboxUnavailable with the fix. ``None`` means Docker's own environment: ``DOCKER_HOST``,
    else the local socket. A ``tcp://`` endpoint uses TLS when ``DOCKER_TLS_VERIFY`` or
    ``DOCKER_CERT_PATH`` is set, as the docker CLI does."""
    try:
        import docker  # noqa: F401 - only checks that the client library is installed
    except ImportError:  # pragma: no cover - a dependency of this package
        raise SandboxUnavailable("the Python package `docker` is missing: pip install docker") from None
    where, api = endpoint(base_url), None
    try:
        api = _client_class()(**_client_kwargs(base_url, timeout))
        api.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the daemon reads the same
        if api is not None:
            api.close()
        fix = DAEMON_FIX if base_url in (None, LOCAL) else (
            f"start the Docker engine there, or leave it out of the sandbox's hosts ({HOSTS_ENV})")
        raise SandboxUnavailable(f"cannot reach the Docker daemon at {where} ({short(exc)}): {fix}") from None
    return api


def endpoint(base_url: str | None = None) -> str:
    """The endpoint ``connect(base_url)`` reaches."""
    return base_url or os.environ.get("DOCKER_HOST") or LOCAL


def _client_kwargs(base_url: str | None, timeout: float) -> dict[str, Any]:
    from docker.utils import kwargs_from_env
    env = dict(os.environ)
    if base_url is not None:
        env["DOCKER_HOST"] = base_url
    if not endpoint(base_url).startswith("tcp://"):  # TLS settings are for TCP endpoints only
        env.pop("DOCKER_TLS_VERIFY", None)
        env.pop("DOCKER_CERT_PATH", None)
    kwargs = kwargs_from_env(env)
    kwargs.setdefault("base_url", LOCAL)
    kwargs["timeout"] = timeout
    return kwargs


@functools.lru_cache(maxsize=None)
def _client_class():
    import docker

    class Client(docker.APIClient):
        """Keeps the TLS verification Docker's settings ask for: against the daemon's own CA
        (``DOCKER_CERT_PATH/ca.pem``), or none without ``DOCKER_TLS_VERIFY``. The client is a
        requests session, which would otherwise let ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``
        decide on every request."""

        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            merged = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if self.verify is not True:  # set from Docker's TLS settings
                merged["verify"] = self.verify
            return merged
    return Client


def short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def require_image(api, image: str = IMAGE, remote: str | None = None) -> dict:
    """The image's inspect data, or SandboxUnavailable saying how to build it (and, for a daemon
    on another machine, ``remote``, how to copy it there)."""
    import docker
    try:
        return api.inspect_image(image)
    except docker.errors.ImageNotFound:
        command = "reasoner sandbox build" + ("" if image == IMAGE else f" --tag {image}")
        copy = f" on that machine, or copy it there: `docker save {image} | docker -H {remote} load`" if remote else ""
        raise SandboxUnavailable(f"the sandbox image {image} is missing: build it with `{command}`{copy}") from None
    except docker.errors.APIError as exc:
        raise SandboxUnavailable(f"cannot inspect the sandbox image {image}: {short(exc)}") from None


def owner() -> str:
    """Who started a container: this host and process (stale containers are found by it)."""
    return f"{socket.gethostname()}/{os.getpid()}"


def memory_limit_mb(job_memory_mb: int) -> int:
    """The container's memory (and memory+swap) limit for jobs of up to ``job_memory_mb``."""
    return job_memory_mb + TMPFS_MB + SHM_MB + HEADROOM_MB


def container_settings(image: str, job_memory_mb: int) -> dict[str, Any]:
    """Arguments of ``APIClient.create_container`` for one hardened runner container.
    ``host_config`` is a dict of ``APIClient.create_host_config`` arguments."""
    memory = f"{memory_limit_mb(job_memory_mb)}m"
    host_config = dict(
        network_mode="none",                       # no interface but loopback: no traffic out or in
        read_only=True,                            # the image cannot be changed by a job
        tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={TMPFS_MB}m,nr_inodes={TMPFS_FILES},mode=1777"},  # capped
        shm_size=f"{SHM_MB}m",
        mem_limit=memory,                          # cgroup memory limit for everything in the container
        memswap_limit=memory,                      # ... with no swap on top
        pids_limit=PIDS,                           # fork bombs and thread bombs stop here
        nano_cpus=int(CPUS * 1e9),                 # one container cannot take more than its CPU share
        cap_drop=["ALL"],                          # no capability but the three the trusted processes
        cap_add=CAPS,                              # hold to run the program as a user of its own
        security_opt=["no-new-privileges",         # setuid binaries give nothing
                      seccomp.security_opt()],     # Docker's default denials and more (sandbox/seccomp.py)
        ipc_mode="private",                        # System V IPC of its own ...
        sysctls={"kernel.shmmax": "0", "kernel.msgmni": "0", "kernel.sem": "0 0 0 0",
                 "fs.mqueue.queues_max": "0"},     # ... and none at all: nothing outlives a job there
        ulimits=[{"Name": "nofile", "Soft": OPEN_FILES, "Hard": OPEN_FILES},
                 {"Name": "core", "Soft": 0, "Hard": 0}],
        log_config={"type": "none", "config": {}},  # the runner's output is not written to the host's disk
        init=False,                                # the runner is PID 1 (see inside/runner.py)
    )
    return dict(
        image=image,
        entrypoint=["python3", "-I", "-c", BOOTSTRAP],
        command=[],
        user=USER,
        working_dir="/tmp",
        hostname="sandbox",
        environment={"PATH": PATH, "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                     "PYTHONDONTWRITEBYTECODE": "1"},
        stdin_open=True,                           # with attach: the host channel; closes when the host goes
        tty=False,
        labels={LABEL: "runner", OWNER: owner()},
        stop_signal="SIGKILL",                     # the runner ignores SIGTERM: a stop (or a daemon's
                                                   # shutdown or restart) would wait 10 s for nothing
        network_disabled=True,
        host_config=host_config,
    )


def our_containers(api, include_stopped: bool = True) -> list[dict]:
    return api.containers(all=include_stopped, filters={"label": LABEL})


def remove_stale(api, everything: bool = False) -> list[str]:
    """Remove sandbox containers left by processes that are gone (or all of them).

    A container is stale when it has exited, or when its owner ran on this host and that
    process no longer exists. Returns the short ids removed."""
    removed = []
    host = socket.gethostname()
    for info in our_containers(api):
        labels = info.get("Labels") or {}
        owner_host, _, pid = labels.get(OWNER, "").partition("/")
        gone = info.get("State") != "running" or (owner_host == host and pid.isdigit() and not _alive(int(pid)))
        if everything or gone:
            try:
                api.remove_container(info["Id"], force=True)
                removed.append(info["Id"][:12])
            except Exception:  # noqa: BLE001 - already gone, or being removed by its owner
                pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
