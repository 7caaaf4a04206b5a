"""Users inside a sandbox container: the runner must be able to give the program a uid of its own,
and says so in one line when it cannot."""

from __future__ import annotations

import pytest

from reasoner.sandbox import engine
from reasoner.sandbox.container import Container, ContainerLost
from tests.sandbox.conftest import require_docker

pytestmark = pytest.mark.docker


def test_a_runner_that_cannot_switch_users_refuses_to_start(monkeypatch):
    """Started as the trusted user itself (no way to give the program another uid), the runner
    stops before its first job instead of running programs under the trusted uid."""
    require_docker()
    hardened = engine.container_settings

    def as_trusted_user(image, memory_mb):
        settings = hardened(image, memory_mb)
        settings["user"] = "10001:10001"
        return settings
    monkeypatch.setattr(engine, "container_settings", as_trusted_user)
    with pytest.raises(ContainerLost, match="the runner must start as root"):
        Container(engine.IMAGE, 256)
