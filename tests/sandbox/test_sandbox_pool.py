"""Pool lifecycle with real containers: lazy start, labels, close, replacement, the wall-clock
kill from outside, a host process that dies, and the Docker gate of this test suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from reasoner.sandbox import FunctionTests, Job, Limits, SandboxUnavailable, engine
from reasoner.sandbox.pool import Sandbox

pytestmark = pytest.mark.docker
ADD = ("def add(a, b):\n    return a + b\n", FunctionTests("assert add(2, 3) == 5"))


@pytest.fixture
def api():
    client = engine.connect()
    yield client
    client.close()


def exists(api, cid: str) -> bool:
    return any(c["Id"] == cid for c in api.containers(all=True))


def test_lazy_start_labels_and_close(api):
    sandbox = Sandbox(workers=2)
    assert sandbox.container_ids() == []  # nothing runs until the first job
    try:
        assert sandbox.run(*ADD).passed
        ids = sandbox.container_ids()
        assert len(ids) == 2
        for cid in ids:
            labels = api.inspect_container(cid)["Config"]["Labels"]
            assert labels[engine.LABEL] == "runner" and labels[engine.OWNER] == engine.owner()
    finally:
        sandbox.close()
    assert not any(exists(api, cid) for cid in ids)
    assert sandbox.run(*ADD).status == "sandbox_error"  # closed for good


def test_hardening_as_docker_reports_it(single, api):
    info = api.inspect_container(single.container_ids()[0])
    host = info["HostConfig"]
    assert (host["NetworkMode"], host["ReadonlyRootfs"], host["CapDrop"], host["SecurityOpt"][:1]) == (
        "none", True, ["ALL"], ["no-new-privileges"])
    from reasoner.sandbox import seccomp
    assert host["SecurityOpt"][1:] == [seccomp.security_opt()]  # our profile, not Docker's default
    assert sorted(host["CapAdd"]) == sorted(f"CAP_{c}" for c in engine.CAPS) or sorted(host["CapAdd"]) == sorted(
        engine.CAPS)
    assert host["Memory"] == host["MemorySwap"] == engine.memory_limit_mb(single.limits.memory_mb) << 20
    assert (host["PidsLimit"], host["NanoCpus"], host["LogConfig"]["Type"]) == (engine.PIDS, 10 ** 9, "none")
    assert info["Config"]["User"] == engine.USER and not host["Binds"] and not info["Mounts"]
    assert info["Config"]["Hostname"] == "sandbox" and info["Config"]["StopSignal"] == "SIGKILL"
    assert {e.split("=")[0] for e in info["Config"]["Env"]} <= {"PATH", "HOME", "TMPDIR", "LANG",
                                                                "PYTHONDONTWRITEBYTECODE"}
    assert (info["Config"]["OpenStdin"], info["Config"]["StdinOnce"], host["AutoRemove"]) == (True, True, False)
    assert {u["Name"]: u["Hard"] for u in host["Ulimits"]} == {"nofile": engine.OPEN_FILES, "core": 0}
    assert host["IpcMode"] == "private" and host["Sysctls"]["kernel.shmmax"] == "0"
    assert "nr_inodes=8192" in host["Tmpfs"]["/tmp"] and host["ShmSize"] == engine.SHM_MB << 20


def test_a_container_that_dies_between_jobs_is_replaced(single, api):
    before = single.replaced
    api.kill(single.container_ids()[0])
    time.sleep(0.5)
    assert single.run(*ADD).passed  # the job goes to a fresh container, not to the dead one
    assert single.replaced == before + 1


def test_a_container_killed_during_a_job(single, api):
    job = single.submit(Job("import time\ndef f():\n    time.sleep(30)\n", FunctionTests("assert f() is None")))
    time.sleep(0.3)
    api.kill(single.container_ids()[0])
    run = job.result(timeout=30)
    assert run.status == "runtime_error" and "the container died during the job" in run.details["error"], run
    assert single.run(*ADD).passed


def test_wall_clock_kill_from_outside(api):
    with Sandbox(workers=1, limits=Limits(timeout=1.0)) as sandbox:
        cid = sandbox.container_ids()[0]
        job = sandbox.submit(Job("import time\ndef f():\n    time.sleep(30)\n", FunctionTests("assert f() is None")))
        time.sleep(0.3)
        api.pause(cid)  # the runner itself can no longer enforce anything
        run = job.result(timeout=30)
        assert run.status == "timeout" and "killed from outside" in run.details["error"], run
        assert not exists(api, cid) and sandbox.replaced == 1
        assert sandbox.run(*ADD).passed


def test_containers_of_a_killed_host_process_stop_and_are_cleaned(api, tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys
        from reasoner.sandbox.pool import Sandbox
        sandbox = Sandbox(workers=1).start()
        print(sandbox.container_ids()[0], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    cid = done.stdout.strip()
    assert cid, done.stderr
    for _ in range(100):  # its stdin closed with the process: the runner exits, the container stops
        if api.inspect_container(cid)["State"]["Status"] == "exited":
            break
        time.sleep(0.1)
    assert api.inspect_container(cid)["State"]["Status"] == "exited"
    assert cid[:12] in engine.remove_stale(api)
    assert not exists(api, cid)


def test_unreachable_docker_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SandboxUnavailable, match="cannot reach the Docker daemon .* start the Docker engine"):
        Sandbox().start()
    run = Sandbox().run(*ADD)
    assert run.status == "sandbox_error" and "sudo dockerd" in run.details["error"]


def test_missing_image_says_how_to_build_it():
    with pytest.raises(SandboxUnavailable, match="reasoner sandbox build --tag reasoner-sandbox:nope"):
        Sandbox(image="reasoner-sandbox:nope").start()


@pytest.mark.parametrize("require, code, words", [("", 0, "1 skipped"), ("1", 1, "REASONER_REQUIRE_DOCKER=1 but")])
def test_the_suite_skips_or_fails_without_docker(require, code, words):
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock", "REASONER_REQUIRE_DOCKER": require}
    here = Path(__file__).parent
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"{here / 'test_sandbox_formats.py'}::test_run_without_tests_passes_on_a_clean_exit"],
                          capture_output=True, text=True, env=env, cwd=here.parent.parent, timeout=120)
    assert done.returncode == code, done.stdout
    assert words in done.stdout
