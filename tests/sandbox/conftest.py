"""Fixtures of the sandbox tests: real Docker, real image, warm pools shared by the session.

Tests marked ``docker`` are skipped when the daemon or the image is not there, and *fail*
instead when ``REASONER_REQUIRE_DOCKER=1`` (CI sets it, after ``.ci/docker.sh``).
"""

from __future__ import annotations

import functools
import os

import pytest

from sandbox import FunctionTests, Limits, SandboxUnavailable

ORDINARY = ("def add(a, b):\n    return a + b\n", FunctionTests("assert add(2, 3) == 5\nassert add('a', 'b') == 'ab'"))
WRONG = ("def add(a, b):\n    return a - b\n", FunctionTests("assert add(2, 3) == 5"))


@functools.lru_cache(maxsize=None)
def docker_problem() -> str | None:
    """Why the sandbox cannot run here (with the fix), or None when it can."""
    from sandbox import engine, image
    try:
        api = engine.connect(timeout=10)
        try:
            info = image.describe(api)
        finally:
            api.close()
    except SandboxUnavailable as exc:
        return str(exc)
    if not info["current"]:
        return f"{info['tag']} is from an older recipe: rebuild it with `reasoner sandbox build`"
    return None


def require_docker() -> None:
    problem = docker_problem()
    if problem:
        if os.environ.get("REASONER_REQUIRE_DOCKER") == "1":
            pytest.fail(f"REASONER_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
        pytest.skip(problem)


@pytest.fixture(autouse=True)
def _docker_gate(request):
    if request.node.get_closest_marker("docker"):
        require_docker()


@pytest.fixture(scope="module")
def second_daemon():
    """A second Docker daemon with the sandbox image (``docker_endpoints.SecondDaemon``), and a
    TCP endpoint on 127.0.0.1 in front of its socket: ``(daemon, proxy)``."""
    from docker_endpoints import LoopbackProxy, SecondDaemon
    require_docker()
    problem = SecondDaemon.problem()
    if problem:
        if os.environ.get("REASONER_REQUIRE_DOCKER") == "1":
            pytest.fail(f"REASONER_REQUIRE_DOCKER=1 but {problem}", pytrace=False)
        pytest.skip(problem)
    daemon = SecondDaemon()
    try:
        daemon.start()
        daemon.load()
        proxy = LoopbackProxy(daemon.unix).start()
        yield daemon, proxy
        proxy.stop()
    finally:
        daemon.remove()


@pytest.fixture(scope="session")
def pool():
    """Two warm containers for ordinary jobs."""
    require_docker()
    from sandbox.pool import Sandbox
    with Sandbox(workers=2, limits=Limits(timeout=5.0)) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def single():
    """One warm container, so that a job and the next one land in the same container."""
    require_docker()
    from sandbox.pool import Sandbox
    with Sandbox(workers=1, limits=Limits(timeout=5.0)) as sandbox:
        yield sandbox


def _still_works(sandbox) -> None:
    good = sandbox.run(*ORDINARY)
    assert good.status == "passed", good
    bad = sandbox.run(*WRONG)
    assert bad.status == "failed", bad


@pytest.fixture
def still_works():
    """``still_works(sandbox)``: the pool answers the next ordinary job correctly, both ways."""
    return _still_works
