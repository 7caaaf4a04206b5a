"""Fixtures of the sandbox tests: real Docker, real image, warm pools shared by the session.

The ``docker`` marker's gate (skip, or fail under ``REASONER_REQUIRE_DOCKER=1``) lives in
``tests/conftest.py``; ``docker_problem`` and ``require_docker`` are importable from here too.
"""

from __future__ import annotations

import os

import pytest

from reasoner.sandbox import FunctionTests, Limits
from tests.conftest import docker_problem, require_docker  # noqa: F401 - re-exported for sandbox tests

ORDINARY = ("def add(a, b):\n    return a + b\n", FunctionTests("assert add(2, 3) == 5\nassert add('a', 'b') == 'ab'"))
WRONG = ("def add(a, b):\n    return a - b\n", FunctionTests("assert add(2, 3) == 5"))


@pytest.fixture(scope="module")
def second_daemon():
    """A second Docker daemon with the sandbox image (``docker_endpoints.SecondDaemon``), and a
    TCP endpoint on 127.0.0.1 in front of its socket: ``(daemon, proxy)``."""
    from tests.sandbox.docker_endpoints import LoopbackProxy, SecondDaemon
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
def single():
    """One warm container, so that a job and the next one land in the same container."""
    require_docker()
    from reasoner.sandbox.pool import Sandbox
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
