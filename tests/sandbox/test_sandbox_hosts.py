"""One pool over several Docker hosts, with real daemons: jobs spread over the hosts; a host
that cannot serve is left out; a host that goes away mid-run (a second daemon killed, a TCP
endpoint closed, an endpoint that hangs) loses no job and comes back when it answers again;
retries are bounded; with no host left a job is a ``sandbox_error``; a container that dies
during its job is that job's verdict and is never retried.

Every endpoint is the machine's own daemon (under two names, or behind a TCP proxy on
127.0.0.1) or a second daemon in its own network namespace: traffic stays on loopback and
unix sockets.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import certifi
import docker
import pytest
from tests.sandbox.docker_endpoints import LoopbackProxy, certificates

from reasoner import verifiers
from reasoner.sandbox import FunctionTests, Job, Limits, SandboxUnavailable, engine
from reasoner.sandbox import hosts as hostlist
from reasoner.sandbox import pool as poolmod
from reasoner.sandbox.pool import Sandbox

LOCAL = engine.endpoint()
DEAD = "unix:///nonexistent/docker.sock"
ADD = Job("def add(a, b):\n    return a + b\n", FunctionTests("assert add(2, 3) == 5"))
SLOW = Job("import time\ndef f():\n    time.sleep(0.3)\n    return 1\n", FunctionTests("assert f() == 1"))


def status(sandbox, name: str) -> dict:
    return next(h for h in sandbox.host_status() if h["name"] == name)


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def retried(runs) -> list:
    return [r for r in runs if "lost_hosts" in r.details]


@pytest.fixture
def api():
    client = engine.connect()
    yield client
    client.close()


@pytest.fixture
def left_behind(api):
    """Removes the containers this process left on the machine's daemon during the test (a pool
    leaves its containers behind an endpoint that is down when it closes)."""
    def mine() -> set[str]:  # other processes may share the daemon
        return {c["Id"] for c in engine.our_containers(api) if c["Labels"].get(engine.OWNER) == engine.owner()}
    before = mine()
    yield
    for cid in mine() - before:
        try:
            api.remove_container(cid, force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture
def proxy(left_behind):
    """``tcp://127.0.0.1:PORT`` in front of the machine's daemon, taken down by the test."""
    endpoint = LoopbackProxy().start()
    yield endpoint
    endpoint.stop()


# ---- endpoints, without Docker -------------------------------------------------------------------

def test_endpoints_are_written_as_a_list_or_in_the_environment(monkeypatch):
    monkeypatch.delenv(engine.HOSTS_ENV, raising=False)
    hosts = hostlist.parse(["unix:///var/run/docker.sock", "tcp://10.1.2.3:2376?workers=16",
                            "unix:///var/run/docker.sock"], workers=2)
    assert [(h.url, h.name, h.workers) for h in hosts] == [
        ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock", 2),
        ("tcp://10.1.2.3:2376", "tcp://10.1.2.3:2376", 16),  # parsed only: nothing is sent anywhere
        ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock#2", 2)]
    monkeypatch.setenv(engine.HOSTS_ENV, " tcp://127.0.0.1:2375?workers=1, unix:///tmp/d2.sock ,")
    sandbox = Sandbox(workers=3)
    assert [(h.name, h.workers) for h in sandbox.hosts] == [("tcp://127.0.0.1:2375", 1), ("unix:///tmp/d2.sock", 3)]
    assert sandbox.workers == 4
    monkeypatch.delenv(engine.HOSTS_ENV)
    monkeypatch.setenv("DOCKER_HOST", "unix:///elsewhere/docker.sock")
    [host] = hostlist.parse(None, workers=2)  # nothing named: Docker's own environment, read when connecting
    assert (host.url, host.name, host.workers) == (None, "unix:///elsewhere/docker.sock", 2)


@pytest.mark.parametrize("spec, words", [
    ("ssh://me@node1", "ssh -NL /tmp/node1.sock:/var/run/docker.sock"),
    ("http://node1:2375", "not a Docker endpoint: write unix:///path/to/docker.sock or tcp://HOST:PORT"),
    ("tcp://node1", "not a Docker endpoint"),
    ("tcp://node1:docker", "not a Docker endpoint"),
    ("unix://", "not a Docker endpoint"),
    ("tcp://node1:2375?workers=0", "workers must be a whole number >= 1"),
    ("tcp://node1:2375?cpus=2", "the only setting of an endpoint is"),
    (" , ", "no Docker endpoint given"),
])
def test_a_bad_endpoint_is_one_clear_error(spec, words, monkeypatch):
    with pytest.raises(ValueError, match=f"^hosts: .*{words}"):
        Sandbox(hosts=spec)
    with pytest.raises(verifiers.VerifierError, match=words):
        verifiers.get("code", hosts=spec)
    monkeypatch.setenv(engine.HOSTS_ENV, spec)
    with pytest.raises(ValueError, match=f"^{engine.HOSTS_ENV}: .*{words}"):
        Sandbox()


def test_pool_settings_are_checked():
    for bad, words in ((dict(retries=-1), "retries must be >= 0"), (dict(probe_interval=0), "probe_interval"),
                       (dict(workers=0), "workers must be >= 1")):
        with pytest.raises(ValueError, match=words):
            Sandbox(hosts=[LOCAL], **bad)


def test_no_host_can_serve(monkeypatch):
    hosts = ["unix:///nonexistent/a.sock", "unix:///nonexistent/b.sock"]
    with pytest.raises(SandboxUnavailable, match="no Docker host of the sandbox can serve: unix:///nonexistent/a.sock: "
                                                 "cannot reach the Docker daemon at unix:///nonexistent/a.sock .*; "
                                                 f"unix:///nonexistent/b.sock: .*leave it out .*{engine.HOSTS_ENV}"):
        Sandbox(hosts=hosts).start()
    checked = []
    check = hostlist.check
    monkeypatch.setattr(hostlist, "check", lambda host, image: checked.append(host.name) or check(host, image))
    sandbox = Sandbox(hosts=hosts, probe_interval=60)
    runs = [sandbox.submit(ADD).result() for _ in range(3)]
    assert [r.status for r in runs] == ["sandbox_error"] * 3 and "cannot reach" in runs[2].details["error"]
    assert checked == hosts  # the jobs after the first do not wait for the same hosts again


# ---- the machine's daemon under two names -------------------------------------------------------

@pytest.mark.docker
def test_jobs_spread_over_two_endpoints(monkeypatch):
    monkeypatch.setenv(engine.HOSTS_ENV, f"{LOCAL},{LOCAL}")  # the code verifier's pool reads it
    code = verifiers.get("code", workers=1)
    reply = "```python\nimport time\ndef add(a, b):\n    time.sleep(0.2)\n    return a + b\n```"
    example = SimpleNamespace(reference={"tests": "assert add(2, 3) == 5"}, id="x", meta={})
    try:
        verdicts = code.verify_batch([reply] * 8, [example] * 8)
        hosts = code.sandbox.host_status()
    finally:
        code.close()
    assert [v.reason for v in verdicts] == ["correct"] * 8
    assert [h["name"] for h in hosts] == [LOCAL, f"{LOCAL}#2"]
    assert all(h["executed"] >= 2 for h in hosts) and sum(h["executed"] for h in hosts) == 8, hosts


@pytest.mark.docker
def test_a_host_that_cannot_serve_is_left_out():
    code = verifiers.get("code", workers=1, hosts=[LOCAL, DEAD])
    try:
        sandbox = code.sandbox.start()
        dead = status(sandbox, DEAD)
        assert not dead["up"] and f"cannot reach the Docker daemon at {DEAD}" in dead["reason"]
        assert [r.status for r in sandbox.run_many([ADD] * 4)] == ["passed"] * 4
        assert status(sandbox, LOCAL)["executed"] == 4 and sandbox.retried == 0
        assert len(sandbox.container_ids()) == 1
    finally:
        code.close()


@pytest.mark.docker
def test_a_container_that_dies_during_its_job_is_that_jobs_verdict(api, still_works):
    with Sandbox(workers=1, hosts=[LOCAL, LOCAL]) as sandbox:
        job = sandbox.submit(Job("import time\ndef f():\n    time.sleep(30)\n", FunctionTests("assert f() is None")))
        time.sleep(0.5)
        for cid in sandbox.container_ids():
            api.kill(cid)
        run = job.result(timeout=30)
        assert run.status == "runtime_error" and "the container died during the job" in run.details["error"], run
        assert "lost_hosts" not in run.details and sandbox.retried == 0
        assert all(h["up"] and h["lost"] == 0 for h in sandbox.host_status())
        still_works(sandbox)


@pytest.mark.docker
@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")  # the part without DOCKER_TLS_VERIFY, on purpose
def test_a_tls_endpoint(tmp_path, monkeypatch, left_behind):
    endpoint = LoopbackProxy(tls=certificates(tmp_path)).start()  # requires a client certificate
    try:
        monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
        monkeypatch.setenv("DOCKER_CERT_PATH", "")
        with pytest.raises(SandboxUnavailable, match=f"cannot reach the Docker daemon at {endpoint.url}"):
            Sandbox(hosts=[endpoint.url]).start()
        monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
        monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))  # ca.pem, cert.pem, key.pem
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # the daemon's own CA wins over this
        with Sandbox(workers=1, hosts=[LOCAL, endpoint.url]) as sandbox:  # TLS settings are for TCP only
            for _ in range(2):  # the second batch finds every container idle
                assert [r.status for r in sandbox.run_many([SLOW] * 6)] == ["passed"] * 6
            assert all(h["executed"] >= 3 for h in sandbox.host_status()) and sandbox.replaced == 0
        monkeypatch.delenv("DOCKER_TLS_VERIFY")  # a certificate path alone: TLS without checking the daemon's
        with Sandbox(workers=1, hosts=[endpoint.url]) as sandbox:
            assert sandbox.run_many([ADD])[0].status == "passed"
    finally:
        endpoint.stop()


@pytest.mark.docker
def test_a_tcp_endpoint_without_the_image_says_how_to_copy_it(proxy):
    with pytest.raises(SandboxUnavailable) as error:
        Sandbox(hosts=[proxy.url], image="reasoner-sandbox:nope").start()
    assert str(error.value).startswith("the sandbox image reasoner-sandbox:nope is missing: build it with `reasoner "
                                       "sandbox build --tag reasoner-sandbox:nope` on that machine, or copy it there: "
                                       f"`docker save reasoner-sandbox:nope | docker -H {proxy.url} load`")


# ---- a TCP endpoint on 127.0.0.1 that goes away -------------------------------------------------

@pytest.mark.docker
def test_an_endpoint_that_goes_away_mid_run_loses_no_job_and_comes_back(proxy, api):
    with Sandbox(workers=2, hosts=[LOCAL, proxy.url], probe_interval=0.3) as sandbox:
        futures = [sandbox.submit(SLOW) for _ in range(16)]
        wait_for(lambda: status(sandbox, proxy.url)["executed"] >= 2)
        proxy.stop()  # every connection closed, new ones refused
        runs = [f.result(timeout=60) for f in futures]
        assert [r.status for r in runs] == ["passed"] * 16
        gone = status(sandbox, proxy.url)
        # out of rotation for whichever noticed first: a job that lost its container, or a slot
        # that could not start a fresh one there
        assert not gone["up"] and ("the daemon does not answer" in gone["reason"]
                                   or "cannot reach the Docker daemon at " + proxy.url in gone["reason"]), gone
        assert 1 <= gone["lost"] == sandbox.retried == len(retried(runs)), gone
        assert all(r.details["lost_hosts"][0].startswith(f"{proxy.url}: ") for r in retried(runs))
        # its containers that were cut off mid-job are left there; which slots were mid-job when
        # it went away is down to timing, so there may be none
        orphans = list(next(h for h in sandbox.hosts if h.url == proxy.url).orphans)
        time.sleep(1.0)
        assert not status(sandbox, proxy.url)["up"]  # probed, still down

        proxy.start()
        wait_for(lambda: status(sandbox, proxy.url)["up"], timeout=30)
        assert not {c["Id"] for c in api.containers(all=True)} & set(orphans)  # removed once it answered
        before = status(sandbox, proxy.url)["executed"]
        assert [r.status for r in sandbox.run_many([SLOW] * 8)] == ["passed"] * 8
        assert status(sandbox, proxy.url)["executed"] > before


@pytest.mark.docker
def test_a_hung_endpoint_is_not_the_jobs_timeout(proxy, monkeypatch):
    monkeypatch.setattr(poolmod, "GRACE", 0.5)
    monkeypatch.setattr(hostlist, "PING_TIMEOUT", 0.5)
    monkeypatch.setattr(hostlist, "CHECK_TIMEOUT", 0.5)
    with Sandbox(workers=1, hosts=[LOCAL, proxy.url], limits=Limits(timeout=2.0), probe_interval=0.3) as sandbox:
        futures = [sandbox.submit(SLOW) for _ in range(8)]
        wait_for(lambda: status(sandbox, proxy.url)["executed"] >= 1)
        proxy.freeze()  # connections stay open, nothing gets through: a network partition
        runs = [f.result(timeout=60) for f in futures]
        assert [r.status for r in runs] == ["passed"] * 8
        hung = status(sandbox, proxy.url)
        assert not hung["up"] and hung["reason"].startswith("no verdict 0.5 s after the 2.0 s limit and the daemon "
                                                            "does not answer")
        assert hung["lost"] == len(retried(runs)) >= 1


@pytest.mark.docker
def test_with_no_host_left_jobs_are_sandbox_errors_until_one_comes_back(proxy):
    with Sandbox(workers=1, hosts=[proxy.url], probe_interval=0.3) as sandbox:
        futures = [sandbox.submit(SLOW) for _ in range(6)]
        wait_for(lambda: status(sandbox, proxy.url)["executed"] >= 1)
        proxy.stop()
        runs = [f.result(timeout=30) for f in futures]
        statuses = {r.status for r in runs}
        assert statuses == {"passed", "sandbox_error"}, runs  # never failed, never an exception
        for run in runs:
            if run.status == "sandbox_error":
                assert run.details["error"].startswith("no Docker host of the sandbox is reachable (tcp://127.0.0.1:")
        assert sandbox.run_many([ADD])[0].status == "sandbox_error"  # at once, while it is down
        proxy.start()
        wait_for(lambda: status(sandbox, proxy.url)["up"], timeout=30)
        assert sandbox.run_many([ADD])[0].status == "passed"


@pytest.mark.docker
def test_retries_are_bounded(proxy):
    with Sandbox(workers=1, hosts=[LOCAL, proxy.url], retries=0) as sandbox:
        futures = [sandbox.submit(SLOW) for _ in range(8)]
        wait_for(lambda: status(sandbox, proxy.url)["executed"] >= 1)
        proxy.stop()
        runs = [f.result(timeout=30) for f in futures]
        errors = [r for r in runs if r.status != "passed"]
        assert len(errors) == status(sandbox, proxy.url)["lost"] >= 1 and sandbox.retried == 0
        for run in errors:
            assert run.status == "sandbox_error" and "not retried again (retries=0)" in run.details["error"]
            assert run.details["lost_hosts"][0].startswith(proxy.url)


# ---- a second Docker daemon, killed mid-run -----------------------------------------------------

@pytest.mark.docker
def test_a_daemon_killed_mid_run_loses_no_job_and_comes_back(second_daemon):
    daemon, tcp = second_daemon
    hosts = [LOCAL, daemon.unix, tcp.url]  # the second daemon twice: on its socket and over TCP
    with Sandbox(workers=1, hosts=[f"{LOCAL}?workers=2", *hosts[1:]], probe_interval=0.5) as sandbox:
        assert [h.workers for h in sandbox.hosts] == [2, 1, 1]
        futures = [sandbox.submit(SLOW) for _ in range(20)]
        wait_for(lambda: min(status(sandbox, h)["executed"] for h in hosts) >= 1)
        daemon.kill()  # a crash: SIGKILL
        runs = [f.result(timeout=60) for f in futures]
        assert [r.status for r in runs] == ["passed"] * 20
        assert [status(sandbox, h)["up"] for h in hosts] == [True, False, False]
        lost = sum(status(sandbox, h)["lost"] for h in hosts)
        assert 1 <= lost == sandbox.retried == len(retried(runs))
        assert sum(status(sandbox, h)["executed"] for h in hosts) == 20
        orphans = sandbox.hosts[1].orphans + sandbox.hosts[2].orphans

        daemon.start()
        wait_for(lambda: all(h["up"] for h in sandbox.host_status()), timeout=60)
        second = engine.connect(daemon.unix)
        try:
            assert not {c["Id"] for c in second.containers(all=True)} & set(orphans)
        finally:
            second.close()
        before = [status(sandbox, h)["executed"] for h in hosts]
        assert [r.status for r in sandbox.run_many([SLOW] * 12)] == ["passed"] * 12
        assert all(status(sandbox, h)["executed"] > b for h, b in zip(hosts, before))
